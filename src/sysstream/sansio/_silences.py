"""Silences with no I/O: matchers over an alert's labels, with an expiry.

A silence mutes notifications of the alerts it matches until it ends; the alerts still
show as active (marked silenced). Matchers are ``label = pattern`` pairs (shell-style
``*`` and ``?``) over the alert's labels plus ``rule`` and ``severity``; all must match.

Matching costs the labels' length times the silences (a fleet agent's labels may run to
4 KiB each, and there may be 1,000 silences: ~90 ms per alert), and every ``GET
/api/alerts`` and alert subscription asks it of every active alert; so each alert's
verdict is kept until the silences change or one of them starts or ends.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._messages import format_timestamp

__all__ = ["MAX_SILENCES", "Silence", "SilenceError", "Silences", "parse_silence"]

MAX_SILENCES = 1000  # a remote party can create silences: bounded
# Verdicts kept (one per rule, severity and labels asked about); past it the oldest goes.
MAX_VERDICTS = 50_000
MAX_MATCHERS = 16
MAX_DURATION = 365 * 86400.0
_MAX_TEXT = 256


class SilenceError(ValueError):
    """An invalid silence request; ``str()`` is the one-line error the client gets."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: Mapping[str, str]
    starts: float
    ends: float
    comment: str = ""

    def matches(self, rule: str, severity: str | None, labels: Mapping[str, str]) -> bool:
        for name, pattern in self.matchers.items():
            if name == "rule":
                value: str | None = rule
            elif name == "severity":
                value = severity
            else:
                value = labels.get(name)
            if value is None or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": dict(self.matchers),
            "starts": format_timestamp(self.starts),
            "ends": format_timestamp(self.ends),
            "comment": self.comment,
        }


def parse_silence(body: Any, silence_id: str, now: float) -> Silence:
    """A silence from a request body: ``{"matchers": {...}, "duration": s | "ends": epoch,
    "comment": "..."}``."""
    if not isinstance(body, dict):
        raise SilenceError(f"expected a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - {"matchers", "duration", "ends", "comment"})
    if unknown:
        expected = "matchers, duration, ends, comment"
        raise SilenceError(f"unknown key {unknown[0]!r}; expected {expected}")
    matchers = body.get("matchers")
    if not isinstance(matchers, dict) or not matchers:
        raise SilenceError("expected matchers as a non-empty object of label: pattern")
    if len(matchers) > MAX_MATCHERS:
        raise SilenceError(f"expected at most {MAX_MATCHERS} matchers, got {len(matchers)}")
    for name, pattern in matchers.items():
        if not isinstance(pattern, str) or not pattern or len(pattern) > _MAX_TEXT:
            raise SilenceError(f"expected matcher {name!r} as a pattern string, got {pattern!r}")
        if not name or len(name) > 64:
            raise SilenceError(f"expected a label name, got {name!r}")
    if ("duration" in body) == ("ends" in body):
        raise SilenceError("expected exactly one of duration (seconds) or ends (epoch seconds)")
    if "duration" in body:
        ends = now + _positive(body["duration"], "duration")
    else:
        ends = _positive(body["ends"], "ends")
        if ends <= now:
            raise SilenceError("expected ends in the future")
    if ends - now > MAX_DURATION:
        raise SilenceError("expected a silence shorter than a year")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > _MAX_TEXT:
        raise SilenceError(f"expected comment as a string of at most {_MAX_TEXT} characters")
    return Silence(silence_id, {str(k): v for k, v in matchers.items()}, now, ends, comment)


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SilenceError(f"expected {name} as a number of seconds, got {value!r}")
    if value <= 0:
        raise SilenceError(f"expected {name} above 0, got {value!r}")
    return float(value)


_Key = tuple[str, str | None, tuple[tuple[str, str], ...]]  # rule, severity, labels


class Silences:
    """The silences in force; expired ones are dropped as time passes."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id = {s.id: s for s in silences}
        self._verdicts: dict[_Key, bool] = {}
        # The verdicts hold while the time is in [from, until): no silence starts or ends.
        self._valid_from, self._valid_until = math.inf, -math.inf
        self.verdicts_computed = 0  # alerts matched against every silence (the cost)

    def add(self, silence: Silence, now: float) -> None:
        self.expire(now)
        if len(self._by_id) >= MAX_SILENCES:
            raise SilenceError(f"expected at most {MAX_SILENCES} silences; delete some first")
        self._by_id[silence.id] = silence
        self._forget_verdicts()

    def remove(self, silence_id: str) -> bool:
        removed = self._by_id.pop(silence_id, None) is not None
        if removed:
            self._forget_verdicts()
        return removed

    def replace(self, silences: Iterable[Silence]) -> None:
        """Take ``silences`` instead (another hub's, in fleet mode); the verdicts are
        kept when they are the same ones."""
        by_id = {s.id: s for s in silences}
        if by_id != self._by_id:
            self._by_id = by_id
            self._forget_verdicts()

    def expire(self, now: float) -> list[Silence]:
        gone = [s for s in self._by_id.values() if s.ends <= now]
        for silence in gone:
            del self._by_id[silence.id]
        if gone:
            self._forget_verdicts()
        return gone

    def list(self, now: float) -> list[Silence]:
        self.expire(now)
        return sorted(self._by_id.values(), key=lambda s: s.starts)

    def silenced(
        self, rule: str, severity: str | None, labels: Mapping[str, str], now: float
    ) -> bool:
        if not self._valid_from <= now < self._valid_until:
            self._forget_verdicts()
            self._valid_from, self._valid_until = self._steady_span(now)
        key = (rule, severity, tuple(labels.items()))
        verdict = self._verdicts.get(key)
        if verdict is None:
            self.verdicts_computed += 1
            verdict = any(
                s.starts <= now < s.ends and s.matches(rule, severity, labels)
                for s in self._by_id.values()
            )
            if len(self._verdicts) >= MAX_VERDICTS:
                del self._verdicts[next(iter(self._verdicts))]
            self._verdicts[key] = verdict
        return verdict

    def _forget_verdicts(self) -> None:
        self._verdicts.clear()
        self._valid_from, self._valid_until = math.inf, -math.inf

    def _steady_span(self, now: float) -> tuple[float, float]:
        """The span around ``now`` in which no silence starts or ends."""
        edges = [edge for s in self._by_id.values() for edge in (s.starts, s.ends)]
        since = max((edge for edge in edges if edge <= now), default=-math.inf)
        until = min((edge for edge in edges if edge > now), default=math.inf)
        return since, until
