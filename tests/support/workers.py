"""Celery workers as real subprocesses, so tests can SIGKILL them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WorkerProcess", "running_worker"]

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """A ``celery -A worker worker`` subprocess with its own log file."""

    def __init__(
        self,
        queues: Sequence[str] = ("lifecycle", "celery", "query", "events"),
        *,
        pool: str = "threads",
        concurrency: int = 8,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.queues = list(queues)
        self.pool = pool
        self.concurrency = concurrency
        self.env = {**os.environ, **(env or {})}
        self.name = name or f"test-{os.getpid()}-{time.monotonic_ns()}"
        self.extra_args = list(extra_args)
        handle, path = tempfile.mkstemp(prefix="celery-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> WorkerProcess:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--loglevel=INFO",
            f"--pool={self.pool}",
            f"--concurrency={self.concurrency}",
            f"--queues={','.join(self.queues)}",
            f"--hostname={self.name}@%h",
            "--without-mingle",
            "--without-gossip",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready within {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: nothing is acked, nothing is restored."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_worker(*args: object, **kwargs: object) -> Iterator[WorkerProcess]:
    """Start a worker subprocess for the block; always stop it, and keep its log on failure."""
    worker = WorkerProcess(*args, **kwargs)  # type: ignore[arg-type]
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)
