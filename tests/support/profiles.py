"""Hypothesis profiles: "dev" (Hypothesis' defaults) and "ci" (nothing that timing can fail)."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import HealthCheck, settings

__all__ = ["TIMING_HEALTH_CHECKS", "profile_for", "register_profiles"]

# The checks a slow, busy or unlucky machine can trip without the code being wrong.
TIMING_HEALTH_CHECKS = (
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
)


def register_profiles() -> None:
    """Register "dev" and "ci" (replacing Hypothesis' own "ci", which still has health checks
    that a slow runner can fail)."""
    settings.register_profile("dev", settings.get_profile("default"))
    # Derandomized, so a CI failure reproduces from the same examples; no example database on
    # a throw-away clone.
    settings.register_profile(
        "ci",
        max_examples=100,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=TIMING_HEALTH_CHECKS,
    )


def profile_for(environ: Mapping[str, str]) -> str:
    """``HYPOTHESIS_PROFILE`` if set, else "ci" when ``CI`` is set (CI sets CI=true), else "dev"."""
    return environ.get("HYPOTHESIS_PROFILE") or ("ci" if environ.get("CI") else "dev")
