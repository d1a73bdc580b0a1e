"""Lifecycle tasks (recordings.*): booking events and start/stop actions."""
