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

With ``--evidence FILE`` it also shows the verdict on each of the canary's
traffic measures (pass, fail or inconclusive, rollout.gates.confidence) with the
numbers that decided it; the advance itself is judged by ``advance``/``check``.

``rollout status --all`` prints every stack of the project in one table.

The rows are computed here, by the gates' own judgement; the command
(:func:`cmd_status`) prints them as text, JSON or Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.cli.clock import now_of
from rollout.cli.markdown import cell
from rollout.cli.output import EXIT_BAD_INPUT, EXIT_OK, say
from rollout.gates.check import load_evidence
from rollout.gates.confidence import evidence_verdicts
from rollout.gates.edits import promoted, selected_services, upstream_progress
from rollout.gates.fleetread import FleetReader
from rollout.gates.fleetview import WAIT_KINDS, waits as gate_waits  # noqa: F401 - WAIT_KINDS: re-exported
from rollout.load.stack import load_stack, stack_names
from rollout.model.durations import format_duration
from rollout.model.errors import ConfigError, UsageError, printable, printable_lines
from rollout.model.state import as_at, rollout_state, status
from rollout.model.stored import transition_from_json
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
    #: The stable track runs the canary's release: the rollout is done, nothing to advance.
    promoted: bool = False

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
            "promoted": self.promoted,
        }


def releases(service_state: dict) -> dict[str, str]:
    """The release each track runs (its image reference, as the state records it)."""
    return {
        track: (service_state.get(track) or {}).get("release") or (service_state.get(track) or {}).get("image") or "-"
        for track in ("stable", "canary")
    }


def upstream_state(config, project: Path, now: datetime, reader: FleetReader | None = None) -> dict | None:
    """The state of the (first) stack the stack promotes from, in the working tree."""
    if not config.upstreams:
        return None
    # As the upstream stood at ``now``: a rehearsal (--now) never sees its later entries.
    if reader is not None:
        return as_at(reader.working_state(config.upstreams[0]), now)
    return as_at(rollout_state(load_stack(config.upstreams[0], project), config.upstreams[0], now), now)


def rows(config, stack: str, now: datetime, upstream: dict | None, services: list[str] | None = None,
         reader: FleetReader | None = None) -> list[Row]:
    """The status rows of one stack at ``now``; ``upstream`` is the promotesFrom stack's state, ``reader``
    (one per command) reads every other stack the fleet gates ask about, once."""
    state = reader.working_state(stack) if reader is not None else rollout_state(config, stack, now)
    names = services if services is not None else [s.name for s in config.services]
    result = []
    for name in names:
        record = state["services"][name]
        st = status(record, now)
        done = promoted(record)
        if done:
            # A completed release is done: nothing proposes it again (rollout.gates.edits.promoted).
            st = replace(st, next_weight=None, earliest_advance_at=None)
        waits = [] if done else [Wait(kind, message) for kind, message in gate_waits(state, name, now, reader, upstream)]
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
                promoted=done,
            )
        )
    return result


def short_waits(row: Row) -> str:
    """The table's "waits for" cell: each kind, with the time it clears when known."""
    if row.next_weight is None:
        if row.promoted:
            return "promoted: the next rollout starts with `rollout release`"
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
    # Each value on its one line, as it shows: escaped before the widths are taken.
    cells = [list(COLUMNS)] + [[printable(c) for c in table_cells(r, now)] for r in all_rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    lines = []
    for line in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1])
    return "\n".join(l.rstrip() for l in lines) + "\n"


def markdown_table(all_rows: list[Row], now: datetime) -> str:
    """The same table in GitHub's Markdown (the Stage watch summary, the preview comment)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c) for c in table_cells(r, now)) + " |" for r in all_rows]
    return "\n".join(lines) + "\n"


def cmd_status(args: argparse.Namespace) -> int:
    now = now_of(args)
    if args.release is not None or args.by_release:
        from rollout.cli.fleet import status_fleet

        return status_fleet(args, now)
    if args.all:
        return _status_all(args, now)
    if args.stack is None:
        raise UsageError("status: name a stack with --stack, or pass --all")
    return _status_stack(args, now)


def _status_stack(args: argparse.Namespace, now: datetime) -> int:
    reader = FleetReader(args.project, now, deployed_from_files=True)
    config = reader.config(args.stack)
    upstream = upstream_state(config, args.project, now, reader)
    found = rows(config, args.stack, now, upstream, selected_services(config, args.service), reader)
    verdicts = _traffic_verdicts(args, config, now)
    safety = sorted(config.safety_flags_on())
    if args.format == "json":
        services = {row.service: row.as_json() for row in found}
        for name, found_verdicts in verdicts.items():
            if name in services:
                services[name]["verdicts"] = found_verdicts if isinstance(found_verdicts, str) else [
                    {"verdict": "inconclusive", "sentence": v} if isinstance(v, str) else v.as_json()
                    for v in found_verdicts]
        print(json.dumps({"stack": args.stack, "now": format_time(now), "safetyFlagsOn": safety, "services": services},
                         indent=2, sort_keys=True))
        return EXIT_OK
    for st in found:
        soak = f", soak {format_duration(st.soak)}" if st.soak is not None else ""
        where = (f"stage {st.stage_number} of {st.stage_count}" if st.stage_number is not None
                 else f"not one of the {st.stage_count} stages")
        say(
            f"{st.service}: {st.weight}% ({where}, plan {st.plan}) since "
            f"{format_time(st.stage_started_at)}, {format_duration(st.time_in_stage)} in stage{soak}"
        )
        say(f"  release: canary {st.canary_image} ({_pods(st.canary_replicas)}), "
            f"stable {st.stable_image} ({_pods(st.stable_replicas)})")
        if st.upstream is not None:
            say(f"  upstream: {st.upstream}")
        for line in _verdict_lines(verdicts[st.service]) if st.service in verdicts else ():
            say(line)
        if st.next_weight is not None:
            served = st.earliest_advance_at is not None and st.earliest_advance_at <= now
            when = "now" if served else f"in {format_duration(st.earliest_advance_at - now)}"
            say(f"  next stage: {st.next_weight}%, earliest advance {format_time(st.earliest_advance_at)} ({when})")
            for wait in st.waits:
                if wait.kind == "upstream":
                    say(f"  waits for {', '.join(config.upstreams)}: {wait.message}")
                elif wait.kind in ("group", "limit", "freeze", "halt"):
                    say(f"  waits for the {wait.kind}: {wait.message}")
        elif st.promoted:
            say(f"  release {st.canary_image} is promoted (the stable track runs it): nothing to advance; "
                "`rollout release --image IMAGE` starts the next rollout")
        elif st.complete:
            say(f"  complete since {format_time(st.completes_at)}")
        elif st.completes_at is not None:
            say(f"  final stage: complete at {format_time(st.completes_at)} (in {format_duration(st.completes_at - now)})")
    for flag in safety:
        say(f"safety flag {flag} is on: no stage may be entered until it is off")
    return EXIT_OK


def _traffic_verdicts(args: argparse.Namespace, config, now: datetime) -> dict:
    """With --evidence: per service, the verdict on each of the canary's traffic measures (passes
    included), or a sentence saying why there is none; without, nothing."""
    if not args.evidence:
        return {}
    t = transition_from_json(rollout_state(config, args.stack, now), None, load_evidence(Path(args.evidence)), None, now)
    return {service.name: evidence_verdicts(t, service.name) for service in config.services}


def _verdict_lines(found) -> list[str]:
    if isinstance(found, str):
        return [f"  traffic: {found}"]
    # A sentence instead of a verdict holds the stage like an inconclusive one.
    return [f"  inconclusive: {v}" if isinstance(v, str) else f"  {v.verdict}: {v.sentence}" for v in found]


def _status_all(args: argparse.Namespace, now: datetime) -> int:
    """``rollout status --all``: every stack and service in one table."""
    if args.stack is not None or args.service is not None or args.evidence:
        raise UsageError("status --all shows every stack and service; leave out --stack, --service and --evidence")
    # One reader for the command: each stack file is loaded once, whichever stack asks about it.
    reader = FleetReader(args.project, now, deployed_from_files=True)
    found, broken = [], []
    for stack in stack_names(args.project):
        try:
            config = reader.config(stack)
            found += rows(config, stack, now, upstream_state(config, args.project, now, reader), reader=reader)
        except ConfigError as err:
            broken.append((stack, err.problems))
    if args.format == "json":
        from rollout.cli.fleet import fleet_json

        print(json.dumps({"now": format_time(now), "rows": [r.as_json() for r in found],
                          "broken": {stack: problems for stack, problems in broken},
                          "releases": fleet_json(reader, now)}, indent=2, sort_keys=True))
    elif args.format == "markdown":
        sys.stdout.write(printable_lines(markdown_table(found, now)))
    else:
        say(f"as at {format_time(now)}")
        sys.stdout.write(printable_lines(text_table(found, now)))
    for stack, problems in broken:
        for line in problems:
            say(line, file=sys.stderr)
    return EXIT_BAD_INPUT if broken else EXIT_OK


def _pods(count) -> str:
    return f"{count} replica{'' if count == 1 else 's'}"
