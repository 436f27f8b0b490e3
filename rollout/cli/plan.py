"""``rollout plan``: the schedule of a service's current rollout.

Each stage of the plan with when it began (from the history) or its earliest
start (the soaks from now on), when its soak ends, and the rollout's earliest
completion. For a stack with ``promotesFrom`` the upstream stack's schedule of
the same service stands beside it, and an upstream stage that is not yet
complete holds the stage back, as the staging-first gate does.

The *current rollout* is the history from its last entry at the plan's first
weight (0 %): a rollback to 0 starts the plan over.

Formats: ``text`` (a table), ``json`` and ``mermaid`` (a Gantt chart; GitHub
renders it in a pull-request comment).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from rollout.cli.clock import now_of
from rollout.cli.output import EXIT_OK
from rollout.cli.status import upstream_state
from rollout.gates.edits import selected_services
from rollout.load.stack import load_stack
from rollout.model.durations import format_duration
from rollout.model.errors import UsageError, printable, printable_lines
from rollout.model.state import rollout_state
from rollout.model.time import format_time, parse_time

DONE, CURRENT, PLANNED = "done", "current", "planned"


@dataclass(frozen=True)
class StageRow:
    weight: int
    soak: timedelta
    #: When the stage began (history); None for a stage not yet entered.
    started_at: datetime | None
    #: A planned stage's earliest start: the soaks from now on, and the upstream.
    earliest_start: datetime | None
    #: When its soak is served (from its start or earliest start).
    soak_ends_at: datetime
    status: str
    #: The upstream stack completes (or completed) this stage at; None without promotesFrom.
    upstream_completes_at: datetime | None = None

    @property
    def start(self) -> datetime:
        return self.started_at or self.earliest_start  # type: ignore[return-value]


@dataclass(frozen=True)
class Schedule:
    stack: str
    service: str
    plan: str
    now: datetime
    stages: list[StageRow]
    #: Off the plan (a weight the plan has no stage for): only a rollback leaves it.
    off_plan_weight: int | None
    upstream: str | None
    upstream_stages: list[StageRow] | None

    @property
    def completes_at(self) -> datetime | None:
        return self.stages[-1].soak_ends_at if self.stages and self.off_plan_weight is None else None

    @property
    def complete(self) -> bool:
        return self.completes_at is not None and self.stages[-1].status != PLANNED and self.now >= self.completes_at

    def as_json(self) -> dict[str, Any]:
        def stage(row: StageRow) -> dict[str, Any]:
            return {
                "weight": row.weight,
                "soakSeconds": int(row.soak.total_seconds()),
                "status": row.status,
                "startedAt": format_time(row.started_at) if row.started_at else None,
                "earliestStart": format_time(row.earliest_start) if row.earliest_start else None,
                "soakEndsAt": format_time(row.soak_ends_at),
                "upstreamCompletesAt": format_time(row.upstream_completes_at) if row.upstream_completes_at else None,
            }

        return {
            "stack": self.stack,
            "service": self.service,
            "plan": self.plan,
            "now": format_time(self.now),
            "offPlanWeight": self.off_plan_weight,
            "stages": [stage(r) for r in self.stages],
            "completesAt": format_time(self.completes_at) if self.completes_at else None,
            "complete": self.complete,
            "upstream": (
                {"stack": self.upstream, "stages": [stage(r) for r in self.upstream_stages or []]}
                if self.upstream
                else None
            ),
        }


def current_rollout(history: list[Mapping[str, Any]], first_weight: int) -> list[tuple[int, datetime]]:
    """The entries of the current rollout: from the last one at the plan's first weight."""
    entries = [(int(e["weight"]), parse_time(e["startedAt"])) for e in history]
    starts = [i for i, (weight, _) in enumerate(entries) if weight == first_weight]
    return entries[starts[-1]:] if starts else entries


def stage_rows(
    service: Mapping[str, Any], now: datetime, upstream_done: Mapping[int, datetime | None] | None = None,
    opens: Callable[[datetime], datetime] | None = None,
) -> tuple[list[StageRow], int | None]:
    """The stages of one service's state (an entry of ``rollout_state()["services"]``).

    ``upstream_done`` maps a weight to when the upstream completes that stage
    (None: no constraint): a planned stage starts no earlier. ``opens`` moves a
    planned start out of the stack's freeze windows (rollout.model.freeze).
    """
    stages = [(s["weight"], timedelta(seconds=s["soakSeconds"])) for s in service["stages"]]
    weights = [w for w, _ in stages]
    # An override or a resume enters no stage: the walk is the stage entries.
    entries = current_rollout([e for e in service["history"] if e.get("kind", "stage") == "stage"], weights[0])
    current_weight, current_start = entries[-1]
    if current_weight not in weights:
        # Off the plan: nothing is scheduled; the history's stages are still shown.
        rows = [
            StageRow(w, soak, started, None, started + soak, DONE)
            for (w, started) in entries[:-1]
            for (sw, soak) in stages
            if sw == w
        ]
        return rows, current_weight
    began = {}
    for weight, started in entries:
        began[weight] = started  # the last time each weight was entered
    index = weights.index(current_weight)
    rows: list[StageRow] = []
    previous_end: datetime | None = None
    for i, (weight, soak) in enumerate(stages):
        upstream_at = (upstream_done or {}).get(weight)
        if i < index:
            started = began.get(weight)
            if started is None:  # not in this rollout's history: skipped earlier, shown without a start
                started = current_start
            rows.append(StageRow(weight, soak, started, None, started + soak, DONE, upstream_at))
        elif i == index:
            rows.append(StageRow(weight, soak, current_start, None, current_start + soak, CURRENT, upstream_at))
            previous_end = max(current_start + soak, now)
        else:
            start = previous_end
            if upstream_at is not None and upstream_at > start:
                start = upstream_at
            if opens is not None:
                start = opens(start)  # no stage begins inside a freeze window
            rows.append(StageRow(weight, soak, None, start, start + soak, PLANNED, upstream_at))
            previous_end = start + soak
    return rows, None


def schedule(state: Mapping[str, Any], service: str, now: datetime, upstream_state: Mapping[str, Any] | None = None) -> Schedule:
    """The schedule of ``service`` in a stack's rollout state at ``now`` (planned stages out of its freeze windows)."""
    from rollout.gates.fleetview import calendar_of

    calendar = calendar_of(state)
    upstream_name = state.get("promotesFrom")
    upstream_name = upstream_name[0] if isinstance(upstream_name, list) and upstream_name else upstream_name
    upstream_rows = None
    done: dict[int, datetime | None] = {}
    if upstream_name and upstream_state and service in (upstream_state.get("services") or {}):
        upstream_service = upstream_state["services"][service]
        upstream_rows, upstream_off = stage_rows(upstream_service, now)
        if upstream_off is None:
            done = {row.weight: row.soak_ends_at for row in upstream_rows}
    rows, off = stage_rows(state["services"][service], now, done if upstream_name else None,
                           calendar.next_open if calendar is not None else None)
    return Schedule(
        stack=state["stack"],
        service=service,
        plan=state["services"][service]["plan"],
        now=now,
        stages=rows,
        off_plan_weight=off,
        upstream=upstream_name,
        upstream_stages=upstream_rows,
    )


# --- formats ---------------------------------------------------------------------


def text(schedules: list[Schedule]) -> str:
    # Names are shown escaped (rollout.model.errors.printable): a stack named by its
    # file or by promotesFrom may hold what would start a line of its own.
    lines = []
    for s in schedules:
        lines.append(f"{printable(s.service)} on {printable(s.stack)} (plan {printable(s.plan)}), as at {format_time(s.now)}:")
        header = ["stage", "weight", "status", "start", "soak", "soak ends"]
        if s.upstream:
            header.append(f"{printable(s.upstream)} completes")
        table = [header]
        for i, row in enumerate(s.stages, 1):
            start = format_time(row.started_at) if row.started_at else f"from {format_time(row.start)}"
            line = [str(i), f"{row.weight}%", row.status, start, format_duration(row.soak), format_time(row.soak_ends_at)]
            if s.upstream:
                line.append(format_time(row.upstream_completes_at) if row.upstream_completes_at else "-")
            table.append(line)
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        if s.off_plan_weight is not None:
            lines.append(f"  at {s.off_plan_weight}%, not a stage of plan {printable(s.plan)}: only a rollback to 0% leaves it")
        elif s.complete:
            lines.append(f"  complete since {format_time(s.completes_at)}")
        else:
            lines.append(f"  completes at {format_time(s.completes_at)} at the earliest")
        lines.append("")
    return "\n".join(lines)


def _mermaid_time(value: datetime) -> str:
    return format_time(value)[:16].replace("T", " ")


def _mermaid_rows(rows: list[StageRow], prefix: str) -> list[str]:
    out = []
    for i, row in enumerate(rows):
        tag = {DONE: "done, ", CURRENT: "active, ", PLANNED: ""}[row.status]
        minutes = max(1, int(row.soak.total_seconds() // 60))
        out.append(f"    {row.weight} % :{tag}{prefix}{i}, {_mermaid_time(row.start)}, {minutes}m")
    return out


def mermaid(schedules: list[Schedule]) -> str:
    """A mermaid Gantt chart: one section per service (and its upstream), one bar per stage.

    Times are UTC to the minute; each bar is the stage's minimum soak. Names
    are escaped (rollout.model.errors.printable): each statement stays on its line.
    """
    lines = ["gantt"]
    if schedules:
        first = schedules[0]
        lines.append(f"    title rollout of {printable(first.stack)} as at {format_time(first.now)} (UTC)")
    lines += ["    dateFormat YYYY-MM-DD HH:mm", "    axisFormat %m-%d"]
    for n, s in enumerate(schedules):
        if s.upstream and s.upstream_stages:
            lines.append(f"    section {printable(s.service)} on {printable(s.upstream)}")
            lines += _mermaid_rows(s.upstream_stages, f"u{n}s")
        lines.append(f"    section {printable(s.service)} on {printable(s.stack)}")
        lines += _mermaid_rows(s.stages, f"s{n}s")
    return "\n".join(lines) + "\n"


def cmd_plan(args: argparse.Namespace) -> int:
    now = now_of(args)
    if args.all:
        from rollout.cli.fleet import plan_fleet

        return plan_fleet(args, now)
    if args.stack is None:
        raise UsageError("plan: name a stack with --stack, or pass --all")
    config = load_stack(args.stack, args.project)
    state = rollout_state(config, args.stack, now)
    upstream = upstream_state(config, args.project, now)
    schedules = [schedule(state, name, now, upstream) for name in selected_services(config, args.service)]
    if args.format == "json":
        print(json.dumps({"stack": args.stack, "services": {s.service: s.as_json() for s in schedules}}, indent=2, sort_keys=True))
    elif args.format == "mermaid":
        sys.stdout.write(printable_lines(mermaid(schedules)))
    else:
        sys.stdout.write(printable_lines(text(schedules)))
    return EXIT_OK
