"""Time, as every layer speaks it: UTC datetimes to the second, ISO 8601 with a zone.

The bottom of the package: it imports nothing of rollout. A stack file's
``startedAt``, an evidence file's times, ``--now`` and the state's outputs are
all parsed and formatted here, and nowhere else.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any


#: How a time is written: UTC to the second, ``2026-11-18T09:00:00Z``.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(value: datetime) -> str:
    """A UTC timestamp as the stack files write it: ``2026-11-18T09:00:00Z``."""
    return value.astimezone(timezone.utc).strftime(TIME_FORMAT)


def read_iso(text: str) -> datetime:
    """ISO 8601 text as the datetime it names, without a zone when it names none.

    A final ``Z`` (or ``z``) is UTC. Raises ValueError for text that is not ISO 8601;
    :func:`parse_time` also refuses a time without a zone.
    """
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)


def parse_time(text: Any) -> datetime:
    """Parse an ISO 8601 timestamp with a zone (``Z`` or an offset) into UTC.

    Raises ValueError for anything else, including a timestamp without a zone.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a timestamp")
    value = read_iso(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return in_range(value)


#: The times a stack file, an evidence file or ``--now`` may hold: [EARLIEST, LATEST).
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)


def in_range(value: datetime) -> datetime:
    """``value`` (with a zone) in UTC; ValueError when outside [EARLIEST, LATEST).

    Within it, every time plus any duration a stack file holds is a valid time.
    """
    if not EARLIEST <= value < LATEST:  # compares instants, whatever the offset
        raise ValueError(
            f"{value.isoformat()[:40]} is out of range; times are from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}"
        )
    return value.astimezone(timezone.utc)


def not_before(moment: datetime) -> datetime:
    """The first whole second at or after ``moment``: an entry written at it (to the second)
    is never earlier than ``moment``, so the history stays in time order."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def utc_now() -> datetime:
    """The current time in UTC, to the second (the precision of the history)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


#: Shown in the help and in the error for a bad value.
FORMAT_HINT = "ISO 8601 with a zone, e.g. 2026-11-19T09:00:00Z or 2026-11-19T10:00:00+01:00"


def parse_instant(text: str) -> datetime:
    """``TIME`` as a UTC datetime to the second; ValueError naming the format otherwise."""
    try:
        value = parse_time(text.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{text[:100]!r} is not a time: {FORMAT_HINT}") from None
    return value.replace(microsecond=0)
