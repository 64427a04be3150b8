"""``ghosttalk bench``: synthetic rooms against a real server, measured from outside.

``server`` starts and observes the server process, ``workers`` runs the synthetic participants in worker
processes, ``runner`` orchestrates one run, ``report`` turns the numbers into the JSON line and the human
summary, ``plot`` draws a sweep. ``command`` is the command line.
"""
