"""Key names and action ids of the lifecycle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from schedules.keys import (
    LifecycleKeys,
    RecordingLogKeys,
    format_action,
    hash_tag,
    parse_action,
)

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
    keys, log = LifecycleKeys("p"), RecordingLogKeys("p")
    makers = [
        keys.booking,
        keys.bhist,
        keys.room,
        keys.rhold,
        keys.rrel,
        keys.rhist,
        log.session,
        log.room,
        log.open,
    ]
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
        log.by_start,
    }
    assert len(fixed) == 8
    assert names_a.isdisjoint(fixed)
    assert all(name.startswith(("{p}:lc:", "{p}:reclog:")) for name in names_a | fixed)


@given(prefix=ids, room=ids, booking=ids)
def test_every_key_of_a_prefix_is_in_the_slot_of_its_hash_tag(
    prefix: str, room: str, booking: str
) -> None:
    # Ids may hold braces; only the first {...} of a name counts, and that is the prefix's.
    keys, log = LifecycleKeys(prefix), RecordingLogKeys(prefix)
    names = [
        keys.due,
        keys.dl_seq,
        keys.booking(booking),
        keys.bhist(booking),
        keys.room(room),
        keys.rhist(room),
        log.session(f"{room}:1"),
        log.open(room),
        log.by_start,
    ]
    tag = hash_tag(prefix)
    assert tag == "{" + prefix + "}"
    assert all(name.startswith(tag + ":") for name in names)
    if "}" not in prefix:
        assert {key_slot(name.encode()) for name in names} == {key_slot(tag.encode())}
