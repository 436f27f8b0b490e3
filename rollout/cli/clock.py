"""The one clock of the command line: the current time, or ``--now TIME``.

Every command that reads the clock (``status``, ``plan``, ``check``,
``advance``, ``rollback``, ``flags``, ``evidence``, and ``release``/``promote``)
takes ``--now TIME`` and asks :func:`now_of` for the time, so a rehearsal or a
test sees exactly what the command would answer at that time, with no edit of
any ``startedAt``.

``TIME`` is ISO 8601 with a zone: ``2026-11-19T09:00:00Z`` or
``2026-11-19T10:00:00+01:00``; a date and time without a zone is refused (it
would mean a different instant on every runner). Seconds are the precision of
the history: fractions are dropped. Parsing lives in :mod:`rollout.model.time`;
what the loader counts as the present, in :mod:`rollout.load.clock`.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from rollout.model.time import FORMAT_HINT, parse_instant, utc_now


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


def now_of(args: argparse.Namespace | None = None) -> datetime:
    """The time a command works at: its ``--now`` when given, else the clock (UTC, to the second)."""
    given = getattr(args, "now", None) if args is not None else None
    return given if given is not None else utc_now()
