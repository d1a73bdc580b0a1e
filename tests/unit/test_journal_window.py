from hypothesis import given
from hypothesis import strategies as st

from worker.simulator.journal import max_in_window


def test_examples() -> None:
    assert max_in_window([], 2.0) == 0
    assert max_in_window([0.0, 1.0, 1.999, 2.0], 2.0) == 3  # [t, t + 2) is half-open
    assert max_in_window([5.0, 0.0, 0.5], 1.0) == 2


@given(
    st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40),
    st.floats(min_value=0.01, max_value=20),
)
def test_matches_brute_force(times: list[float], window: float) -> None:
    brute = max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)
    assert max_in_window(times, window) == brute
