"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["json_values"]


def json_values(max_leaves: int = 10) -> st.SearchStrategy[object]:
    """Anything a JSON message can carry (plus NaN and infinities, which Python's json module
    reads and writes), nested a little."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )
