"""The present as the loader sees it: the clock, or the command's ``--now``.

A stack file whose history has an entry ahead of the present is refused (a stage
is recorded when it begins), except by a rollback, which is never refused. The
model does not read the clock's settings itself: :func:`validation_context` is
handed to pydantic by the loader, and the model's validator reads it from there
(:class:`rollout.model.config.RolloutSettings`).

The settings are context variables so that one command's ``--now`` never leaks
into another run in the same process (the tests call ``main`` many times).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

#: The ``--now`` of the command being run, for the checks that ask "is this in the future?".
_REHEARSED: ContextVar[datetime | None] = ContextVar("rollout_now", default=None)

#: Set by ``rollout rollback``: a history entry ahead of the clock does not refuse the file.
_FUTURE_TOLERATED: ContextVar[bool] = ContextVar("rollout_future_tolerated", default=False)


def rehearse(value: datetime | None) -> None:
    """Make ``value`` (a command's ``--now``) count as the present for the config's checks."""
    _REHEARSED.set(value)


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


def validation_context() -> dict[str, Any]:
    """What the config model's validators are told about the present."""
    return {"present": latest_clock(), "tolerate_future": future_tolerated()}
