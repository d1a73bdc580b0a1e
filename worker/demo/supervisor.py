"""Starts Procfile processes with one environment, watches them, and stops them all cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.demo.procfile import read_procfile

__all__ = ["ProcessGroup"]


@dataclass
class _Running:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class ProcessGroup:
    """Procfile processes sharing ``env``; each logs to ``log_dir/<name>.log``."""

    env: Mapping[str, str]
    log_dir: Path
    bin_dir: Path
    running: list[_Running] = field(default_factory=list)

    def start(self, name: str) -> None:
        command = read_procfile()[name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        env = {**os.environ, **self.env, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}"}
        with log_path.open("wb") as log:
            # A new session per process: Ctrl-C in the terminal reaches the demo only, which then
            # stops each process in order.
            process = subprocess.Popen(
                ["sh", "-c", f"exec {command}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append(_Running(name, process, log_path))

    def wait_until(self, name: str, ready: Callable[[], bool], timeout_s: float = 60.0) -> None:
        entry = next(r for r in self.running if r.name == name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if entry.process.poll() is not None:
                raise RuntimeError(f"{name} exited early; last lines:\n{self.tail(name)}")
            # Not ready yet: any failure to answer.
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"{name} not ready within {timeout_s:.0f}s; last lines:\n{self.tail(name)}"
        )

    def dead(self) -> list[str]:
        return [r.name for r in self.running if r.process.poll() is not None]

    def tail(self, name: str, lines: int = 15) -> str:
        entry = next(r for r in self.running if r.name == name)
        text = entry.log_path.read_text(errors="replace") if entry.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """SIGTERM in reverse start order (warm shutdown), SIGKILL whatever hangs."""
        for entry in reversed(self.running):
            if entry.process.poll() is None:
                os.killpg(entry.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for entry in reversed(self.running):
            try:
                entry.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(entry.process.pid, signal.SIGKILL)
                entry.process.wait(5)
        self.running.clear()
