"""Prometheus-style durations ("30s", "5m", "1h30m", "7d") as timedeltas."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")
#: The longest duration a stack file may hold (10 years): every sum of them stays a valid time.
MAX_DURATION = timedelta(days=3650)
_KINDS = {list: "a list", dict: "a mapping"}


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m" into a timedelta; raise ValueError with the allowed form."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        # A list or mapping is named, not shown: through aliases it can be very large.
        shown = repr(text[:40]) if isinstance(text, str) else _KINDS.get(type(text), repr(text)[:40])
        raise ValueError(
            f"{shown} is not a duration; use a number and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m, 7d"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text[:40]!r} is longer than the longest duration allowed, {MAX_DURATION.days}d (10 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus duration for a timedelta: 86400 s -> "1d"."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
