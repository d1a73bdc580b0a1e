"""Celery tasks: thin wrappers over plain functions."""
