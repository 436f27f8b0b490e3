"""The one clock of the command line: the current time, or ``--now TIME``.

Every command that reads the clock (``status``, ``plan``, ``check``,
``advance``, ``rollback``, ``flags``, ``evidence``, and ``release``/``promote``)
takes ``--now TIME`` and asks :func:`now_of` for the time, so a rehearsal or a
test sees exactly what the command would answer at that time, with no edit of
any ``startedAt``.

``TIME`` is ISO 8601 with a zone: ``2026-11-19T09:00:00Z`` or
``2026-11-19T10:00:00+01:00``; a date and time without a zone is refused (it
would mean a different instant on every runner). Seconds are the precision of
the history: fractions are dropped.
"""

from __future__ import annotations

import argparse
from contextvars import ContextVar
from datetime import datetime, timezone

from rollout.state import parse_time, utc_now

#: Shown in the help and in the error for a bad value.
FORMAT_HINT = "ISO 8601 with a zone, e.g. 2026-11-19T09:00:00Z or 2026-11-19T10:00:00+01:00"


def parse_instant(text: str) -> datetime:
    """``TIME`` as a UTC datetime to the second; ValueError naming the format otherwise."""
    try:
        value = parse_time(text.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{text[:100]!r} is not a time: {FORMAT_HINT}") from None
    return value.replace(microsecond=0)


def instant_arg(text: str) -> datetime:
    """argparse ``type=`` for ``--now``/``--at``: a bad value is exit 2 with one line."""
    try:
        return parse_instant(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_now_argument(parser: argparse.ArgumentParser, what: str = "the answer") -> None:
    """``--now TIME`` on a command that reads the clock."""
    parser.add_argument(
        "--now",
        type=instant_arg,
        default=None,
        metavar="TIME",
        help=f"{what} as at TIME instead of the current time ({FORMAT_HINT})",
    )


#: The ``--now`` of the command being run, for the checks that ask "is this in the future?".
_REHEARSED: ContextVar[datetime | None] = ContextVar("rollout_now", default=None)


def rehearse(value: datetime | None) -> None:
    """Make ``value`` (a command's ``--now``) count as the present for the config's checks."""
    _REHEARSED.set(value)


#: Set by ``rollout rollback``: a history entry ahead of the clock does not refuse the file.
_FUTURE_TOLERATED: ContextVar[bool] = ContextVar("rollout_future_tolerated", default=False)


def tolerate_future(value: bool = True) -> None:
    """Let history entries ahead of the clock pass (a rollback is never refused).

    A machine with a fast clock may have written them; the rollback is recorded
    at the latest of them, so the history stays in time order.
    """
    _FUTURE_TOLERATED.set(value)


def future_tolerated() -> bool:
    return _FUTURE_TOLERATED.get()


def latest_clock() -> datetime:
    """The later of the clock and the command's ``--now``: a history entry after it is in the future.

    A ``--now`` in the past leaves the clock as the limit, so asking about last week
    never refuses a file that has moved on since."""
    clock = datetime.now(timezone.utc)
    given = _REHEARSED.get()
    return max(clock, given) if given is not None else clock


def now_of(args: argparse.Namespace | None = None) -> datetime:
    """The time a command works at: its ``--now`` when given, else the clock (UTC, to the second)."""
    given = getattr(args, "now", None) if args is not None else None
    return given if given is not None else utc_now()
