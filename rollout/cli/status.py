"""``rollout status``: where each service's rollout stands, and what its next advance waits for.

One row per (stack, service): the release of each track, the canary's weight,
the stage, the time in it, the earliest next advance and what that advance
waits for. What it waits for is asked of the gates themselves
(:func:`rollout.gates.judge.judge`) about the next stage entered at ``now``, with the
stack file as the deployed state, so ``status`` and ``advance`` never disagree:

- ``soak``: the current stage has not served its minimum soak;
- ``upstream``: the stack it promotes from has not completed that stage;
- ``group``, ``limit``, ``freeze``, ``halt``: a member of its release group, the
  fleet-wide limit, a freeze window, a rollback upstream (rollout.gates.fleetview);
- ``safety flag``: a safety flag is on;
- ``evidence``: always, for an advance above the current weight: the canary's
  budget is judged on fresh evidence (``rollout evidence``), never by ``status``.

``rollout status --all`` prints every stack of the project in one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.gates.fleetread import FleetReader
from rollout.gates.fleetview import WAIT_KINDS, waits as gate_waits  # noqa: F401 - WAIT_KINDS: re-exported
from rollout.model.durations import format_duration
from rollout.model.state import rollout_state, status
from rollout.model.time import format_time


@dataclass(frozen=True)
class Wait:
    """One thing the next advance waits for: its kind (:data:`WAIT_KINDS`) and why."""

    kind: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Row:
    stack: str
    service: str
    plan: str
    releases: dict[str, str]
    weight: int
    stage_number: int | None
    stage_count: int
    stage_started_at: datetime
    time_in_stage: Any
    soak: Any
    next_weight: int | None
    earliest_advance_at: datetime | None
    completes_at: datetime | None
    complete: bool
    waits: list[Wait] = field(default_factory=list)
    #: The tracks' images and replicas (rollout.model.state's ``canary``/``stable``).
    canary_image: str | None = None
    stable_image: str | None = None
    canary_replicas: int | None = None
    stable_replicas: int | None = None
    #: What the promotesFrom stack completed with this release (rollout.gates.edits).
    upstream: str | None = None

    @property
    def may_advance(self) -> bool:
        """Nothing but evidence stands in the way: the soak is served, the upstream
        allows it and no safety flag is on. The canary's SLOs are judged on the
        pull request, with evidence."""
        return self.next_weight is not None and all(w.kind == "evidence" for w in self.waits)

    @property
    def stage(self) -> str:
        number = self.stage_number if self.stage_number is not None else "?"
        return f"{number}/{self.stage_count}"

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "service": self.service,
            "plan": self.plan,
            "releases": self.releases,
            "weight": self.weight,
            "stage": self.stage_number,
            "stageCount": self.stage_count,
            "stageStartedAt": format_time(self.stage_started_at),
            "timeInStageSeconds": int(self.time_in_stage.total_seconds()),
            "nextWeight": self.next_weight,
            "earliestAdvance": format_time(self.earliest_advance_at) if self.earliest_advance_at else None,
            "completesAt": format_time(self.completes_at) if self.completes_at else None,
            "complete": self.complete,
            "waitsFor": [w.message for w in self.waits if w.kind != "evidence"],
            "waits": [w.as_json() for w in self.waits],
            "mayAdvance": self.may_advance,
            "release": self.canary_image,
            "stableImage": self.stable_image,
            "canaryReplicas": self.canary_replicas,
            "upstream": self.upstream,
        }


def releases(service_state: dict) -> dict[str, str]:
    """The release each track runs (its image reference, as the state records it)."""
    return {
        track: (service_state.get(track) or {}).get("release") or (service_state.get(track) or {}).get("image") or "-"
        for track in ("stable", "canary")
    }


def stack_names(project: Path) -> list[str]:
    """Every stack of the project (stacks/Pulumi.<stack>.yaml), sorted."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project / "stacks").glob("Pulumi.*.yaml"))


def upstream_state(config, project: Path, now: datetime, reader: FleetReader | None = None) -> dict | None:
    """The state of the (first) stack the stack promotes from, in the working tree."""
    if not config.upstreams:
        return None
    if reader is not None:
        return reader.working_state(config.upstreams[0])
    from rollout.load.stack import load_stack

    return rollout_state(load_stack(config.upstreams[0], project), config.upstreams[0], now)


def rows(config, stack: str, now: datetime, upstream: dict | None, services: list[str] | None = None,
         reader: FleetReader | None = None) -> list[Row]:
    """The status rows of one stack at ``now``; ``upstream`` is the promotesFrom stack's state, ``reader``
    (one per command) reads every other stack the fleet gates ask about, once."""
    state = reader.working_state(stack) if reader is not None else rollout_state(config, stack, now)
    names = services if services is not None else [s.name for s in config.services]
    result = []
    for name in names:
        from rollout.gates.edits import upstream_progress

        record = state["services"][name]
        st = status(record, now)
        waits = [Wait(kind, message) for kind, message in gate_waits(state, name, now, reader, upstream)]
        result.append(
            Row(
                stack=stack,
                service=name,
                plan=st.plan,
                releases=releases(record),
                weight=st.weight,
                stage_number=st.stage_number,
                stage_count=st.stage_count,
                stage_started_at=st.stage_started_at,
                time_in_stage=st.time_in_stage,
                soak=st.soak,
                next_weight=st.next_weight,
                earliest_advance_at=st.earliest_advance_at,
                completes_at=st.completes_at,
                complete=st.complete,
                waits=waits,
                canary_image=st.canary_image,
                stable_image=st.stable_image,
                canary_replicas=st.canary_replicas,
                stable_replicas=(record.get("stable") or {}).get("replicas"),
                upstream=upstream_progress(upstream, name, st.canary_image, now) if upstream is not None else None,
            )
        )
    return result


def short_waits(row: Row) -> str:
    """The table's "waits for" cell: each kind, with the time it clears when known."""
    if row.next_weight is None:
        if row.complete:
            return "complete"
        if row.completes_at is not None:
            return f"final soak until {format_time(row.completes_at)}"
        return "off the plan: only a rollback"
    parts = []
    for wait in row.waits:
        if wait.kind == "soak" and row.earliest_advance_at is not None:
            parts.append(f"soak until {format_time(row.earliest_advance_at)}")
        elif wait.kind == "upstream":
            parts.append(f"upstream ({wait.message})")
        elif wait.kind == "safety flag":
            parts.append(wait.message.removeprefix("the "))
        else:
            parts.append(wait.kind)
    return ", ".join(dict.fromkeys(parts)) or "nothing"


COLUMNS = ("stack", "service", "stable", "canary", "weight", "stage", "in stage", "next advance", "waits for")


def table_cells(row: Row, now: datetime) -> list[str]:
    if row.next_weight is None:
        advance = "-"
    elif row.earliest_advance_at is not None and row.earliest_advance_at > now:
        advance = format_time(row.earliest_advance_at)
    else:
        advance = "now"
    return [
        row.stack,
        row.service,
        row.releases["stable"],
        row.releases["canary"],
        f"{row.weight}%",
        f"{row.stage} {row.plan}",
        format_duration(row.time_in_stage),
        advance,
        short_waits(row),
    ]


def text_table(all_rows: list[Row], now: datetime) -> str:
    """A plain aligned table; the last column is left unpadded."""
    from rollout.model.errors import printable

    # Each value on its one line, as it shows: escaped before the widths are taken.
    cells = [list(COLUMNS)] + [[printable(c) for c in table_cells(r, now)] for r in all_rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    lines = []
    for line in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1])
    return "\n".join(l.rstrip() for l in lines) + "\n"


def markdown_table(all_rows: list[Row], now: datetime) -> str:
    """The same table in GitHub's Markdown (the Stage watch summary, the preview comment)."""

    from rollout.cli.markdown import cell

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c) for c in table_cells(r, now)) + " |" for r in all_rows]
    return "\n".join(lines) + "\n"
