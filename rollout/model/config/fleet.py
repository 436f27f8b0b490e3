"""A stack in a fleet: its upstreams (``promotesFrom``), the fleet-wide limit's group, the
services that move together (``releaseGroups``) and the freeze windows (``freeze``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainSerializer, PlainValidator, model_validator

from rollout.model.config.fields import DnsLabel, Model, STACK_NAME, between
from rollout.model.errors import KeyedError
from rollout.model.freeze import Window, zone


def _upstreams(value: Any) -> str | list[str]:
    hint = "must be a stack name or a list of stack names (1 to 100 letters, digits, '_', '.' or '-' each)"
    if isinstance(value, str):
        if not STACK_NAME.fullmatch(value):
            raise ValueError(hint)
        return value
    if isinstance(value, (list, tuple)) and value:
        names = list(value)
        if not all(isinstance(n, str) and STACK_NAME.fullmatch(n) for n in names):
            raise ValueError(hint)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(repeated)} more than once")
        return names
    raise ValueError(hint)


#: ``promotesFrom``: one stack name, or a list of them (a wave that waits for several stacks).
PromotesFrom = Annotated[str | list[str], PlainValidator(_upstreams), PlainSerializer(lambda v: v)]


def upstream_names(value: str | list[str] | None) -> tuple[str, ...]:
    """The stacks a ``promotesFrom`` value names, in its order (none for None)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class FleetSettings(Model):
    """The fleet-wide limit: how many stacks of a named group may run a release before one completed it."""

    group: DnsLabel
    """The group this stack belongs to (e.g. ``regions``): every stack naming the same group counts
    against its limit."""
    max_in_progress: Annotated[int, between(1, 1000)] = 1
    """At most this many stacks of the group hold a release above 0 % before one of them completed it
    (100 % for the plan's final soak, or promoted). A stack entering its first stage above 0 % beyond
    the limit is refused (``rollout-fleet-limit``). Members that disagree: the smallest value holds."""


def _window_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("is not a weekday and a time (Friday 16:00) or a date and a time (2026-12-24 00:00)")
    return value.strip()


WindowPoint = Annotated[str, AfterValidator(_window_text)]


class FreezeWindowSettings(Model):
    """One freeze window: recurring (weekdays and times) or dated (dates and times), in the freeze's time zone."""

    name: DnsLabel
    """What the window is called in refusals and in ``rollout plan`` (e.g. ``weekend``, ``christmas``)."""
    start: WindowPoint
    """Where the window starts: ``Friday 16:00`` (every week) or ``2026-12-24 00:00`` (once)."""
    end: WindowPoint
    """Where it ends (not included): the same kind as ``start``, e.g. ``Monday 08:00`` or ``2026-12-27 00:00``."""

    @model_validator(mode="after")
    def _ends(self) -> "FreezeWindowSettings":
        try:
            self.window.check()
        except ValueError as err:
            raise KeyedError(("end",), str(err).removeprefix(f"window {self.name}: ")) from None
        return self

    @property
    def window(self) -> Window:
        return Window(self.name, self.start, self.end)


def _time_zone(value: str) -> str:
    zone(value)
    return value


class FreezeSettings(Model):
    """When no stage may begin: an advance, a release or a promote whose stage would begin inside
    a window is refused (``rollout-freeze-window``); a rollback never is."""

    time_zone: Annotated[str, AfterValidator(_time_zone)] = "UTC"
    """The IANA time zone the windows are read in (``Europe/Berlin``): a window keeps its wall-clock
    hours across daylight saving time."""
    windows: list[FreezeWindowSettings] = Field(default_factory=list)
    """The windows, each recurring or dated."""
    allow_override: bool = False
    """Whether an emergency override may open a window for one service: a history entry with
    ``kind: override``, ``by`` (who), ``reason`` (why) and ``until`` (when it ends), written by
    ``rollout override``. On a stack with false, an override entry is refused."""

    @model_validator(mode="after")
    def _names(self) -> "FreezeSettings":
        names = [w.name for w in self.windows]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise KeyedError(("windows",), f"window name {', '.join(repeated)} is used more than once")
        return self


ReleaseGroupMembers = Annotated[list[DnsLabel], Field(min_length=2, max_length=50)]

__all__ = [
    "FleetSettings",
    "FreezeSettings",
    "FreezeWindowSettings",
    "PromotesFrom",
    "ReleaseGroupMembers",
    "upstream_names",
]
