"""Shared helpers for tests that run real Redis, HTTP servers and Celery workers."""
