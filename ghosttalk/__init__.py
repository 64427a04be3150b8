"""GhostTalk: anonymous browser voice chat served by a Python Selective Forwarding Unit."""
