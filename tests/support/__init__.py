"""What the tests share, one concept a module.

* ``server``: a real server in a child process (``ServerProcess``), on free loopback ports.
* ``eventually``: wait for a condition instead of sleeping a fixed time.
* ``room``: headless clients joined to a room and negotiated.
* ``probes``: the server seen from outside (admin JSON, metrics, event log, console tracebacks, RSS, fds, UDP).
* ``adminapi``: admin requests and signaling-only joins (claiming an address through the trusted proxy).
* ``rawws``: a hand-written WebSocket client that can send what no library would.
* ``rawpeer``: a peer behind a raw WebSocket that can die like a process; offers and candidate lines.
* ``calls``: calls whose delivery is counted per speaker and listener; ``callprocess`` runs them in a child.
* ``joiner``: ``ghosttalk join`` in a child process.
* ``fuzzing``: the Hypothesis strategies of the signaling fuzz.
* ``scripts``: running the deployment scripts (executables, a clean environment, /healthz).
* ``browser``: Chromium (Playwright) and Firefox (Marionette) pages, and the audio probes run inside them.
"""
