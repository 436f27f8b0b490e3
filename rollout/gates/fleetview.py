"""One view of a release across the fleet: every stack, its wave, what its next stage waits for.

What a stage waits for is asked of the gates themselves: the next stage of each
service, entered at ``now``, judged with the stack files as the deployed states
(:class:`rollout.gates.fleetread.FleetReader` with ``deployed_from_files``), so
``status`` and ``advance`` never disagree. Each refusal is a kind of wait:

``soak``, ``upstream`` (a stack it promotes from), ``group`` (a member of its
release group), ``limit`` (the fleet-wide limit), ``freeze`` (a window),
``halt`` (a rollback upstream), ``safety flag``, ``plan`` and ``evidence``
(always, for an advance: the canary's budget is judged on fresh evidence).

:func:`next_move` says when the stage may move next: the end of the soak, moved
past the freeze windows; a wait on another stack (upstream, group, limit) or a
halt has no date of its own here (``rollout plan --all`` dates the upstreams).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from rollout.gates.fleetread import FleetReader
from rollout.gates.judge import judge
from rollout.gates.names import (
    CANARY_WITHIN_BUDGET,
    FLEET_HALT,
    FLEET_LIMIT,
    FREEZE_WINDOW,
    NEXT_STAGE_ONLY,
    NO_SAFETY_FLAG_ON_ADVANCE,
    RELEASE_GROUP_IN_STEP,
    SOAK_SERVED,
    STAGING_FIRST,
)
from rollout.model.freeze import Calendar, Window
from rollout.model.state import status, with_entry
from rollout.model.stored import transition_from_json, upstream_names
from rollout.model.time import format_time

#: What an advance can wait for, in the order a reader clears them.
WAIT_KINDS = {
    SOAK_SERVED: "soak",
    STAGING_FIRST: "upstream",
    RELEASE_GROUP_IN_STEP: "group",
    FLEET_LIMIT: "limit",
    FREEZE_WINDOW: "freeze",
    FLEET_HALT: "halt",
    NO_SAFETY_FLAG_ON_ADVANCE: "safety flag",
    NEXT_STAGE_ONLY: "plan",
    CANARY_WITHIN_BUDGET: "evidence",
}
_ORDER = list(WAIT_KINDS.values())


def waits(state: Mapping[str, Any], service: str, now: datetime, reader: FleetReader | None = None,
          upstream: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """(kind, message) of each gate that refuses ``service``'s next stage entered at ``now``."""
    record = state["services"][service]
    if record.get("nextWeight") is None:
        return []
    ahead = with_entry(state, service, record["nextWeight"], now, None, now)
    names = upstream_names(state.get("promotesFrom"))
    upstreams = fleet = None
    if reader is not None:
        # Parsed once per command, whichever service asks.
        upstreams = {name: reader.parsed_upstream(name) for name in names}
        upstream = upstreams.get(names[0]) if names else None
        fleet = reader.working_view(str(state.get("stack")))
    found = [(WAIT_KINDS.get(v.policy, v.policy), v.message)
             for v in judge(transition_from_json(ahead, state, None, upstream, now,
                                                 upstreams=upstreams if len(names) > 1 else None, fleet=fleet))
             if v.service == service]
    return sorted(found, key=lambda w: _ORDER.index(w[0]) if w[0] in _ORDER else 99)


def calendar_of(state: Mapping[str, Any]) -> Calendar | None:
    """The stack's freeze windows (None: none)."""
    freeze = state.get("freeze") or {}
    windows = tuple(Window(w["name"], w["start"], w["end"]) for w in freeze.get("windows") or ())
    return Calendar(freeze.get("timeZone") or "UTC", windows) if windows else None


def next_move(state: Mapping[str, Any], service: str, now: datetime, kinds: list[str]) -> tuple[datetime | None, str]:
    """When the service's next stage may begin, and how that reads (``now``, a time, or what it waits on)."""
    record = status(state["services"][service], now)
    if record.next_weight is None:
        return None, "complete" if record.complete else "-"
    if "halt" in kinds:
        return None, "halted"
    others = [k for k in kinds if k in ("upstream", "group", "limit", "safety flag", "plan")]
    earliest = max(now, record.earliest_advance_at or now)
    calendar = calendar_of(state)
    if calendar is not None:
        earliest = calendar.next_open(earliest)
    shown = "now" if earliest <= now else format_time(earliest)
    if others:
        return earliest, f"{shown}, after {' and '.join(dict.fromkeys(others))}"
    return earliest, shown


@dataclass(frozen=True)
class FleetRow:
    """One service of one stack in the fleet's view of a release."""

    stack: str
    wave: int
    service: str
    release: str | None
    stable: str | None
    weight: int
    stage: str
    next_weight: int | None
    waits: list[tuple[str, str]] = field(default_factory=list)
    next_move_at: datetime | None = None
    next_move: str = "-"

    @property
    def waits_for(self) -> str:
        return ", ".join(dict.fromkeys(kind for kind, _ in self.waits if kind != "evidence")) or "nothing"

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "wave": self.wave, "service": self.service, "release": self.release,
                "stable": self.stable, "weight": self.weight, "stage": self.stage, "nextWeight": self.next_weight,
                "waits": [{"kind": k, "message": m} for k, m in self.waits], "waitsFor": self.waits_for,
                "nextMove": self.next_move,
                "nextMoveAt": format_time(self.next_move_at) if self.next_move_at else None}


def fleet_rows(reader: FleetReader, now: datetime, release: str | None = None) -> tuple[list[FleetRow], dict]:
    """Every stack's services in promotion order (only those running ``release`` on a track, when given),
    and the stacks whose files do not load."""
    from rollout.model.errors import ConfigError
    from rollout.model.releases import same_release

    fleet = reader.fleet
    waves = fleet.graph.waves()
    broken = dict(fleet.broken)
    found = []
    for stack in fleet.graph.order():
        try:
            config = reader.config(stack)
        except ConfigError as err:
            broken.setdefault(stack, err.problems)
            continue
        state = reader.working_state(stack)
        for service in config.services:
            record = state["services"][service.name]
            canary, stable = record["canary"]["image"], record["stable"]["image"]
            if release is not None and not (same_release(canary, release) or same_release(stable, release)):
                continue
            st = status(record, now)
            kinds = waits(state, service.name, now, reader)
            moved_at, moved = next_move(state, service.name, now, [k for k, _ in kinds])
            found.append(FleetRow(stack, waves.get(stack, 0), service.name, canary, stable, st.weight,
                                  f"{st.stage_number or '?'}/{st.stage_count}", st.next_weight, kinds, moved_at, moved))
    return found, broken


COLUMNS = ("wave", "stack", "service", "release", "weight", "stage", "waits for", "next move")


def cells(row: FleetRow) -> list[str]:
    """A row's cells, in :data:`COLUMNS` order."""
    return [str(row.wave), row.stack, row.service, row.release or "-", f"{row.weight}%", row.stage, row.waits_for,
            row.next_move]


def by_release(rows: list[FleetRow], release: str | None = None) -> dict[str, list[FleetRow]]:
    """The rows grouped by the release their canary runs (each group in promotion order)."""
    groups: dict[str, list[FleetRow]] = {}
    for row in rows:
        groups.setdefault(release or row.release or "-", []).append(row)
    return groups


__all__ = ["COLUMNS", "FleetRow", "WAIT_KINDS", "by_release", "calendar_of", "cells", "fleet_rows", "next_move",
           "waits"]
