"""Every Redis key name of the recording lifecycle and its recording log, in one place.

Every key lives under the deployment's hash tag, ``{<REDIS_KEY_PREFIX>}`` (:func:`hash_tag`), as
``limits`` names its keys: Redis Cluster hashes only the text between the first ``{`` and ``}``,
so every key of one deployment is in one slot and a script may touch any of them. The lifecycle's
keys are under ``{<prefix>}:lc:`` (``lc`` = lifecycle), the recording log's under
``{<prefix>}:reclog:``. Each kind of per-id key has its own namespace word, so no booking, room or
session id (ids may contain ``:``) can make one key look like another:

================================  ======  =====================================================
key (after ``{<prefix>}:``)       type    content
================================  ======  =====================================================
``lc:due``                        zset    pending actions, scored by due time (epoch s)
``lc:inflight``                   zset    claimed actions, scored by lease deadline (epoch s)
``lc:b:<booking_id>``             hash    one booking: window, params, state, next action (short
                                          fields, see ``schedules/layout.py``)
``lc:bh:<booking_id>``            list    the booking's history (JSON entries, oldest first;
                                          none until the booking's second event)
``lc:room:<room_id>``             hash    one room: state, current vendor operation, call guard
``lc:rhold:<room_id>``            set     bookings holding the room's recording
``lc:rrel:<room_id>``             set     bookings released and waiting for the room's stop
``lc:rhist:<room_id>``            list    the room's history (expires 30 days after its last
                                          entry)
``lc:active``                     zset    bookings holding a room, scored by their stop due time
``lc:rooms``                      zset    rooms recording, scored by the time recording started
``lc:outbox``                     zset    booking events not yet published downstream: JSON facts
                                          scored by when they are due (epoch ms; a publisher's
                                          lease pushes the score on)
``lc:counts``                     hash    bookings per state (state -> count), kept by every
                                          state write (``schedules/counts.py``)
``lc:ended``                      zset    finished bookings, ``<state>:<booking_id>``, scored by
                                          when their hash expires (epoch s); pruned from the
                                          counts once expired
``lc:dl:seq``                     string  dead-letter id counter
``lc:dl:entries``                 hash    dead-letter id -> JSON entry
``lc:dl:index``                   zset    dead-letter ids scored by creation time
``reclog:s:<session_id>``         hash    one vendor recording: room_id, started_at, stopped_at
                                          ("" while recording), booking_ids (JSON list),
                                          user_data, uncertain ("1": the start's outcome
                                          was never confirmed)
``reclog:by_start``               zset    session ids scored by sent_at (first attempt, epoch s)
``reclog:room:<room_id>``         zset    the room's session ids scored by sent_at
``reclog:by_stop``                zset    session ids whose stop the vendor confirmed, scored by
                                          stopped_at (read by discovery's missing-file judge)
``reclog:max_span``               string  the widest started_at - sent_at logged (s)
``reclog:open:<room_id>``         string  the session id of the room's running recording
================================  ======  =====================================================

Action ids (the members of ``due``/``inflight`` and the Celery task ids):
``start:<booking_id>:<seq>`` and ``stop:<booking_id>:<seq>`` act on one booking;
``op:<room_id>:<seq>`` is a vendor operation (start or stop call) on one room. ``seq`` never
repeats for one booking or room, so a stale copy of an action can always be told from the
current one. A session id is ``<room_id>:<started_at ms>``.

No Lua script builds a key name: every key a script touches is passed in KEYS. Where which keys
are needed is only known from Redis (a booking's room, a room's holders, a room's open session),
the Python side reads it first and the script checks it still holds (see ``schedules/store.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.redis import hash_tag

__all__ = [
    "NAMESPACE",
    "RECLOG_NAMESPACE",
    "ActionRef",
    "LifecycleKeys",
    "RecordingLogKeys",
    "format_action",
    "hash_tag",
    "parse_action",
]

NAMESPACE = "lc"
RECLOG_NAMESPACE = "reclog"
ACTION_KINDS = ("start", "stop", "op")


@dataclass(frozen=True)
class LifecycleKeys:
    """Key names under one deployment prefix (``settings.redis_key_prefix``)."""

    prefix: str

    @property
    def base(self) -> str:
        return f"{hash_tag(self.prefix)}:{NAMESPACE}:"

    @property
    def due(self) -> str:
        return self.base + "due"

    @property
    def inflight(self) -> str:
        return self.base + "inflight"

    @property
    def active(self) -> str:
        return self.base + "active"

    @property
    def rooms(self) -> str:
        return self.base + "rooms"

    @property
    def outbox(self) -> str:
        return self.base + "outbox"

    @property
    def counts(self) -> str:
        return self.base + "counts"

    @property
    def ended(self) -> str:
        return self.base + "ended"

    @property
    def dl_seq(self) -> str:
        return self.base + "dl:seq"

    @property
    def dl_entries(self) -> str:
        return self.base + "dl:entries"

    @property
    def dl_index(self) -> str:
        return self.base + "dl:index"

    def booking(self, booking_id: str) -> str:
        return self.base + "b:" + booking_id

    def bhist(self, booking_id: str) -> str:
        return self.base + "bh:" + booking_id

    def room(self, room_id: str) -> str:
        return self.base + "room:" + room_id

    def rhold(self, room_id: str) -> str:
        return self.base + "rhold:" + room_id

    def rrel(self, room_id: str) -> str:
        return self.base + "rrel:" + room_id

    def rhist(self, room_id: str) -> str:
        return self.base + "rhist:" + room_id

    def pattern(self) -> str:
        """A SCAN pattern matching every lifecycle key of this prefix."""
        return self.base + "*"


@dataclass(frozen=True)
class RecordingLogKeys:
    """Key names of the recording log (``schedules/recording_log.py``) under one prefix."""

    prefix: str

    @property
    def base(self) -> str:
        return f"{hash_tag(self.prefix)}:{RECLOG_NAMESPACE}:"

    @property
    def by_start(self) -> str:
        return self.base + "by_start"

    @property
    def by_stop(self) -> str:
        return self.base + "by_stop"

    @property
    def max_span(self) -> str:
        return self.base + "max_span"

    def session(self, session_id: str) -> str:
        return self.base + "s:" + session_id

    def room(self, room_id: str) -> str:
        return self.base + "room:" + room_id

    def open(self, room_id: str) -> str:
        return self.base + "open:" + room_id


@dataclass(frozen=True)
class ActionRef:
    """A parsed action id: ``kind`` is start, stop (booking actions) or op (room operation)."""

    kind: str
    subject: str
    seq: int

    @property
    def id(self) -> str:
        return format_action(self.kind, self.subject, self.seq)

    @property
    def is_room_op(self) -> bool:
        return self.kind == "op"


def format_action(kind: str, subject: str, seq: int) -> str:
    """``<kind>:<subject>:<seq>``; the subject (a booking or room id) may contain ``:``."""
    if kind not in ACTION_KINDS:
        raise ValueError(f"unknown action kind {kind!r}")
    return f"{kind}:{subject}:{seq}"


def parse_action(action_id: str) -> ActionRef:
    """The inverse of :func:`format_action`; ValueError for anything else."""
    kind, sep, rest = action_id.partition(":")
    subject, sep2, seq = rest.rpartition(":")
    if not sep or not sep2 or kind not in ACTION_KINDS or not subject or not seq.isdigit():
        raise ValueError(f"not an action id: {action_id!r}")
    return ActionRef(kind, subject, int(seq))
