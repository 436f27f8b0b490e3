"""Freeze windows: when no stage may begin.

A window is either **recurring** (a weekday and a time to another weekday and
time, every week: ``Friday 16:00`` to ``Monday 08:00``) or **dated** (a date and
time to another: ``2026-12-24 00:00`` to ``2026-12-27 00:00``, a holiday). Both
are read in one named IANA time zone (``Europe/Berlin``, through
:mod:`zoneinfo`), so a window keeps its wall-clock hours across a change of
daylight saving time. A window holds its start and not its end: ``[start, end)``.

Pure rules over text forms: :func:`parse_point` says in one line what is wrong
with a written point; :class:`Calendar` answers whether an instant is frozen and
when the next open instant is (``rollout plan`` dates stages with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKLY = re.compile(r"(?i)([a-z]+) ([0-9]{1,2}):([0-9]{2})")
_DATED = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T]([0-9]{1,2}):([0-9]{2}))?")
_WEEK_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Point:
    """One end of a window: ``weekly`` (minutes after Monday 00:00) or ``dated`` (a local datetime)."""

    kind: str
    minute_of_week: int | None = None
    local: datetime | None = None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError naming what is allowed."""
    try:
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
            raise ValueError
        return _zone(name)
    except (ValueError, ZoneInfoNotFoundError, OSError):
        raise ValueError(f"{str(name)[:60]!r} is not an IANA time zone, e.g. Europe/Berlin or UTC") from None


@lru_cache(maxsize=None)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_point(text: str) -> Point:
    """``Friday 16:00`` (recurring) or ``2026-12-24 00:00`` / ``2026-12-24`` (dated); ValueError otherwise."""
    hint = "a weekday and a time (Friday 16:00) or a date and a time (2026-12-24 00:00)"
    if not isinstance(text, str):
        raise ValueError(f"is not {hint}")
    weekly = _WEEKLY.fullmatch(text.strip())
    if weekly:
        day, hour, minute = weekly.group(1).lower(), int(weekly.group(2)), int(weekly.group(3))
        if day not in WEEKDAYS or hour > 23 or minute > 59:
            raise ValueError(f"{text[:40]!r} is not {hint}")
        return Point("weekly", minute_of_week=WEEKDAYS.index(day) * 1440 + hour * 60 + minute)
    dated = _DATED.fullmatch(text.strip())
    if dated:
        year, month, day = (int(dated.group(i)) for i in (1, 2, 3))
        hour, minute = int(dated.group(4) or 0), int(dated.group(5) or 0)
        try:
            return Point("dated", local=datetime.combine(date(year, month, day), time(hour, minute)))
        except ValueError:
            pass
    raise ValueError(f"{text[:40]!r} is not {hint}")


@dataclass(frozen=True)
class Window:
    """A named window, its two ends as written."""

    name: str
    start: str
    end: str

    def check(self) -> None:
        """ValueError when the ends are not of one kind, or a dated window ends before it starts."""
        start, end = parse_point(self.start), parse_point(self.end)
        if start.kind != end.kind:
            raise ValueError(f"window {self.name}: {self.start!r} and {self.end!r} must both be weekdays or both dates")
        if start.kind == "dated" and end.local <= start.local:
            raise ValueError(f"window {self.name}: ends ({self.end}) before it starts ({self.start})")
        if start.kind == "weekly" and start.minute_of_week == end.minute_of_week:
            raise ValueError(f"window {self.name}: starts and ends at the same time of the week")


@dataclass(frozen=True)
class Calendar:
    """The windows of a stack, in its time zone."""

    time_zone: str
    windows: tuple[Window, ...]

    def covering(self, instant: datetime) -> tuple[Window, datetime] | None:
        """The first window that holds ``instant``, and when it ends (UTC); None when open."""
        tz = zone(self.time_zone)
        local = instant.astimezone(tz)
        for window in self.windows:
            end = _end_if_inside(window, local, tz)
            if end is not None:
                return window, end
        return None

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` when no window holds it, else the first instant after it that none holds."""
        moment = instant
        for _ in range(64):  # windows that touch one another: each step leaves one
            found = self.covering(moment)
            if found is None:
                return moment
            moment = max(found[1], moment + timedelta(seconds=1))
        return moment


def _end_if_inside(window: Window, local: datetime, tz: ZoneInfo) -> datetime | None:
    start, end = parse_point(window.start), parse_point(window.end)
    if start.kind == "dated":
        begins = start.local.replace(tzinfo=tz)
        ends = end.local.replace(tzinfo=tz)
        if begins <= local < ends:
            return ends.astimezone(timezone.utc)
        return None
    position = local.weekday() * 1440 + local.hour * 60 + local.minute
    a, b = start.minute_of_week, end.minute_of_week
    inside = a <= position < b if a < b else (position >= a or position < b)
    if not inside:
        return None
    # The end: the next local wall-clock time at b's weekday and minute after ``local``.
    ahead = (b - position) % _WEEK_MINUTES or _WEEK_MINUTES
    wall = local.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=ahead)
    return wall.replace(tzinfo=tz).astimezone(timezone.utc)


__all__ = ["WEEKDAYS", "Calendar", "Point", "Window", "parse_point", "zone"]
