"""The Hypothesis profiles: CI cannot fail a property through timing; the environment picks."""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests.support.profiles import TIMING_HEALTH_CHECKS, profile_for


def test_ci_profile_has_no_deadline_and_no_timing_health_checks() -> None:
    ci = settings.get_profile("ci")
    assert ci.deadline is None
    assert set(TIMING_HEALTH_CHECKS) <= set(ci.suppress_health_check)
    assert ci.max_examples >= 50


def test_dev_profile_is_hypothesis_default() -> None:
    dev, default = settings.get_profile("dev"), settings.get_profile("default")
    assert (dev.deadline, dev.max_examples, dev.suppress_health_check) == (
        default.deadline,
        default.max_examples,
        default.suppress_health_check,
    )


@pytest.mark.parametrize(
    ("environ", "profile"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}, "dev"),
        ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
    ],
)
def test_environment_picks_the_profile(environ: dict[str, str], profile: str) -> None:
    assert profile_for(environ) == profile
