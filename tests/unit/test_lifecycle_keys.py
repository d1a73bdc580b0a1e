"""Key names and action ids of the lifecycle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedules.keys import LifecycleKeys, format_action, parse_action

ids = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")


@given(kind=st.sampled_from(["start", "stop", "op"]), subject=ids, seq=st.integers(0, 10**9))
def test_action_ids_round_trip_even_with_colons_in_ids(kind: str, subject: str, seq: int) -> None:
    ref = parse_action(format_action(kind, subject, seq))
    assert (ref.kind, ref.subject, ref.seq) == (kind, subject, seq)
    assert ref.is_room_op == (kind == "op")


@pytest.mark.parametrize("bad", ["", "start", "start:b", "start::1", "go:b:1", "start:b:x"])
def test_malformed_action_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_action(bad)


@given(a=ids, b=ids)
def test_per_id_keys_never_collide_across_kinds_or_ids(a: str, b: str) -> None:
    keys = LifecycleKeys("p")
    makers = [keys.booking, keys.bhist, keys.room, keys.rhold, keys.rrel, keys.rhist]
    names_a = {maker(a) for maker in makers}
    assert len(names_a) == len(makers)
    if a != b:
        assert names_a.isdisjoint({maker(b) for maker in makers})
    fixed = {
        keys.due,
        keys.inflight,
        keys.active,
        keys.rooms,
        keys.dl_seq,
        keys.dl_entries,
        keys.dl_index,
    }
    assert names_a.isdisjoint(fixed)
    assert all(name.startswith("p:lc:") for name in names_a | fixed)
