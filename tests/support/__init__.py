"""Test helpers: the run's names and environment, Hypothesis profiles, strategies, and helpers for
tests that run real Redis, HTTP servers and Celery workers."""
