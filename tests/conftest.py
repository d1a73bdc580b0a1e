"""What every tier gets: Hypothesis profiles and an environment that needs no server.

The simulator, the Redis fixtures and the environment pointing at them belong to the
integration tier (tests/integration/conftest.py), so ``pytest tests/unit`` runs with neither.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.support.profiles import profile_for, register_profiles
from tests.support.run import base_environment

register_profiles()
settings.load_profile(profile_for(os.environ))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # First: when pytest is given a path inside tests/integration, that tier's conftest is
    # loaded up front and would otherwise have its simulator URLs overwritten by these.
    os.environ.update(base_environment())
    # Tests must use the broker and backend the settings derive from REDIS_URL, not a
    # developer's own.
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    from config.settings import get_settings

    get_settings.cache_clear()
