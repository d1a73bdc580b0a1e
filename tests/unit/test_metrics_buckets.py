"""Histogram buckets kept in Redis: each observation lands in exactly the bucket Prometheus
means by ``le`` (the first upper bound >= the value; the last bucket is +Inf)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.metrics.recorder import HISTOGRAMS, bucket_index

bounds = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12, unique=True)


@given(bounds.map(sorted), st.floats(-2e6, 2e6, allow_nan=False))
def test_a_value_lands_in_the_first_bucket_whose_bound_holds_it(
    sorted_bounds: list[float], value: float
) -> None:
    i = bucket_index(sorted_bounds, value)
    edges = [*sorted_bounds, float("inf")]
    assert value <= edges[i]
    assert i == 0 or value > edges[i - 1]


def test_every_histogram_has_increasing_bounds() -> None:
    for spec in HISTOGRAMS.values():
        assert list(spec.bounds) == sorted(set(spec.bounds))
    assert bucket_index(HISTOGRAMS["action_lateness_seconds"].bounds, 0.1) == 0
    assert bucket_index(HISTOGRAMS["action_lateness_seconds"].bounds, 1e9) == len(
        HISTOGRAMS["action_lateness_seconds"].bounds
    )
