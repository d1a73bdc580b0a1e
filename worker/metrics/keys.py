"""The Redis keys of the metrics, under ``{<prefix>}:metrics:``.

| key                    | type | what                                                          |
| ---------------------- | ---- | ------------------------------------------------------------- |
| ``c:<name>``           | hash | a counter: field = the label values as a JSON list, value = n |
| ``h:<name>``           | hash | a histogram: ``b:<i>`` (observations in bucket i, not         |
|                        |      | cumulative; i = len(bounds) is +Inf), ``sum``, ``count``      |

Both live under the deployment's hash tag, so a pipeline of one recording stays in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.redis import hash_tag

__all__ = ["MetricsKeys"]


@dataclass(frozen=True)
class MetricsKeys:
    """Key names under ``{<prefix>}:metrics:``."""

    prefix: str

    def _k(self, *parts: str) -> str:
        return ":".join((hash_tag(self.prefix), "metrics", *parts))

    def counter(self, name: str) -> str:
        return self._k("c", name)

    def histogram(self, name: str) -> str:
        return self._k("h", name)
