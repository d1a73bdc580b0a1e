"""Configuration: environment-driven settings (and, later, Celery wiring)."""

from config.settings import Settings, SettingsError, get_settings, load_settings

__all__ = ["Settings", "SettingsError", "get_settings", "load_settings"]
