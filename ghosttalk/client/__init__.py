"""The headless participant (``ghosttalk join``, the tests and the benchmark): signaling, media, audio files."""
