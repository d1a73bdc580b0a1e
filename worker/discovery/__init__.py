"""Recording discovery: find every file (callbacks, time polls, room look-ups) within the global
query budget, tie it to its room and booking, and publish exactly one message per file.

Start at :mod:`worker.discovery.service` (the wiring) and ``docs/discovery.md``.
"""
