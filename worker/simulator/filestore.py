"""The vendor's file store: files appear when a recording stops, and each is called back once.

Not locked: :class:`~worker.simulator.state.SimulatorState` calls it under its own lock, so a
file is created, listed and called back in the order the vendor's calls arrived.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from worker.simulator.config import SimulatorConfig
from worker.simulator.journal import Journal
from worker.simulator.recordings import FileTiming, RecordedFile, create_files
from worker.simulator.rooms import Room

__all__ = ["CallbackJob", "FileStore"]


@dataclass(frozen=True)
class CallbackJob:
    """One file's callback, decided under the lock and sent outside it."""

    url: str
    body: dict[str, Any]
    copies: int
    fileid: str
    generation: int
    timeout_s: float


class FileStore:
    """Every recorded file, in creation order, with the randomness that shapes them."""

    def __init__(self) -> None:
        self._files: dict[str, RecordedFile] = {}
        # Two streams, so how many files a test makes does not shift which callbacks drop.
        self._files_rng = random.Random()
        self._callbacks_rng = random.Random()

    def reseed(self, seed: int | None) -> None:
        """Make file names, sizes, failures and callback faults repeat for the same seed."""
        self._files_rng.seed(None if seed is None else f"files:{seed}")
        self._callbacks_rng.seed(None if seed is None else f"callbacks:{seed}")

    def clear(self) -> None:
        self._files.clear()

    def all(self) -> Iterable[RecordedFile]:
        return self._files.values()

    def get(self, fileid: str) -> RecordedFile | None:
        return self._files.get(fileid)

    def add_recording(
        self, room: Room, end: float, cfg: SimulatorConfig, base_url: str
    ) -> list[RecordedFile]:
        """The files of ``room``'s recording, stopped at ``end``, under the settings in force
        (none for a room in ``no_file_rooms``)."""
        if room.room_id in cfg.no_file_rooms:
            return []
        files = create_files(
            self._files_rng,
            app_id=room.app_id,
            room_id=room.room_id,
            start=room.since,
            end=end,
            user_data=room.user_data,
            name_rule=room.name_rule,
            path=room.path,
            per_user_files=cfg.per_user_files,
            timing=FileTiming(
                upload_delay_s=cfg.upload_delay_s,
                listing_lag_s=cfg.listing_lag_s,
                transcode_delay_s=cfg.transcode_delay_s,
                transcode_fail_rate=cfg.transcode_fail_rate,
            ),
            base_url=cfg.public_url or base_url,
        )
        for file in files:
            self._files[file.fileid] = file
        return files

    def due_callbacks(
        self,
        cfg: SimulatorConfig,
        now: float,
        journal: Journal,
        secrets: Iterable[str],
        generation: int,
    ) -> list[CallbackJob]:
        """Callbacks to send now: files that reached status 2 and were not called back yet.

        A dropped callback is journaled here, since no attempt will ever be made for it.
        """
        jobs = []
        due = [
            f
            for f in self._files.values()
            if f.callback == "pending" and now >= f.upload_at and now >= f.final_at()
        ]
        for file in sorted(due, key=lambda f: (f.final_at(), f.fileid)):
            if file.fails or cfg.callback_url is None:
                file.callback = "skipped"
                continue
            # A silent room draws no number: switching it on does not shift other rooms' drops.
            silent = file.room_id in cfg.silent_rooms
            if silent or self._callbacks_rng.random() < cfg.callback_drop_rate:
                file.callback = "dropped"
                journal.add(
                    time=now,
                    endpoint="callback",
                    client_ip=None,
                    params=file.callback_body(),
                    verdict="fault: silent room" if silent else "fault: drop",
                    secrets=secrets,
                    target=cfg.callback_url,
                )
                continue
            copies = 2 if self._callbacks_rng.random() < cfg.callback_duplicate_rate else 1
            file.callback = "sent"
            jobs.append(
                CallbackJob(
                    url=cfg.callback_url,
                    body=file.callback_body(),
                    copies=copies,
                    fileid=file.fileid,
                    generation=generation,
                    timeout_s=cfg.callback_timeout_s,
                )
            )
        return jobs
