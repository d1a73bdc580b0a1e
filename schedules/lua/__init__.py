"""Lua scripts of the recording lifecycle, one atomic operation per file (package data)."""
