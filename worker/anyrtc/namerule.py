"""NameRule: the vendor's file-naming template, validated before any call (api-notes §2).

Interpretation (written down because the guide is terse): "至少携带两级下划线" is read as
*at least two underscores*, i.e. three or more non-empty levels such as ``ar_{roomid}_{date}``.
Rejecting a rule the vendor might take costs a customer one edit; sending one it rejects costs
a missed recording.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.anyrtc.signing import RANDOM_ALPHABET

__all__ = ["MAX_PLACEHOLDERS", "MAX_RULE_LENGTH", "PLACEHOLDERS", "NameRule"]

PLACEHOLDERS = ("random", "date", "time", "roomid", "userid")
MAX_PLACEHOLDERS = 5
MAX_RULE_LENGTH = 128
MIN_UNDERSCORES = 2

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SAFE_LITERAL = re.compile(r"[A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class NameRule:
    """A validated NameRule; build it with :meth:`parse`."""

    rule: str

    @classmethod
    def parse(cls, rule: str) -> NameRule:
        """Validate ``rule``; raise ValueError listing every problem found."""
        problems = cls.problems(rule)
        if problems:
            raise ValueError(f"invalid NameRule {rule!r}: " + "; ".join(problems))
        return cls(rule=rule)

    @staticmethod
    def problems(rule: object) -> list[str]:
        """Every reason ``rule`` is not a valid NameRule (empty when it is valid)."""
        if not isinstance(rule, str):
            return [f"must be a string, not {type(rule).__name__}"]
        found: list[str] = []
        if not rule:
            return ["must not be empty"]
        if len(rule) > MAX_RULE_LENGTH:
            found.append(f"is {len(rule)} characters long; at most {MAX_RULE_LENGTH} allowed")
        names = _PLACEHOLDER.findall(rule)
        unknown = sorted({n for n in names if n not in PLACEHOLDERS})
        if unknown:
            found.append(
                "unknown placeholder(s) "
                + ", ".join("{" + n + "}" for n in unknown)
                + "; allowed: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )
        if len(names) > MAX_PLACEHOLDERS:
            found.append(f"has {len(names)} placeholders; at most {MAX_PLACEHOLDERS} allowed")
        literal = _PLACEHOLDER.sub("", rule)
        if "{" in literal or "}" in literal:
            found.append("has an unbalanced '{' or '}'")
        bad_chars = sorted(set(_SAFE_LITERAL.sub("", literal.replace("{", "").replace("}", ""))))
        if bad_chars:
            shown = " ".join(repr(c) for c in bad_chars)
            found.append(f"has unsafe character(s) {shown}; use letters, digits, '_', '-', '.'")
        if ".." in literal or rule.startswith("."):
            found.append("must not start with '.' or contain '..'")
        if rule.count("_") < MIN_UNDERSCORES:
            found.append(
                f"needs at least {MIN_UNDERSCORES} underscore-separated levels "
                "(e.g. ar_{roomid}_{date}_{random})"
            )
        elif any(level == "" for level in rule.split("_")):
            found.append("has an empty level (leading, trailing or doubled '_')")
        return found

    def render(
        self,
        room_id: str,
        *,
        user_id: str | None = None,
        when: datetime | None = None,
        random: str | None = None,
    ) -> str:
        """The file name this rule gives; ``{userid}`` is empty for a mixed recording."""
        moment = when or datetime.now(UTC)
        values = {
            "random": random or "".join(secrets.choice(RANDOM_ALPHABET) for _ in range(4)),
            "date": moment.strftime("%Y%m%d"),
            "time": str(int(moment.timestamp())),
            "roomid": room_id,
            "userid": user_id or "",
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.rule)

    def __str__(self) -> str:
        return self.rule
