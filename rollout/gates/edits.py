"""The edits of a stack file's history: ``advance``, ``rollback``, ``release`` and ``promote``.

``advance`` appends the next stage of the plan, judged by the gates first;
``rollback`` appends weight 0 and is never refused. ``release`` and ``promote``
are the two edits that change what a stack runs.

``release`` starts a new rollout: the canary's image becomes the new release and
the history gets a 0 % entry recording it, in one edit of the stack file.
``promote`` ends one: once the rollout completed (100 % served for the plan's
final soak), the stable track takes the release, ``stable.previousImage`` keeps
the image it replaces (a revert goes back to it) and the history gets a 0 %
entry: traffic returns to stable, which now runs the same release.

Both edit under the stack file's lock (:func:`rollout.load.stackfile.locked`) and
judge the state they are about to write with the gates before writing, so what
they write passes ``rollout check``. The clock is one ``now`` handed down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from rollout.gates.check import format_violation, gate_report
from rollout.gates.judge import CANARY_WITHIN_BUDGET, GateViolation, judge
from rollout.load.stack import display_path, read_stack_file, validate
from rollout.load.stackfile import NewEntry, TrackValue, append_history
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration
from rollout.model.errors import UsageError
from rollout.model.releases import is_pinned, same_release
from rollout.model.state import current_soak, rollout_state, with_entry
from rollout.model.stored import transition_from_json
from rollout.model.time import format_time, not_before, parse_time


class Refused(Exception):
    """The edit is refused (exit 1); the stack file is unchanged. One line per reason."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class Edit:
    """What a command writes: history entries and track values, and what to print."""

    entries: list
    values: list
    lines: list[str]


def selected_services(config: StackConfig, name: str | None) -> list[str]:
    """The services ``--service`` names: that one, or every service of the stack when None."""
    names = [service.name for service in config.services]
    if name is None:
        return names
    if name not in names:
        raise UsageError(f"--service {name}: not a service of this stack; services: {', '.join(names)}")
    return [name]


def acted_on(config: StackConfig, name: str | None, all_services: bool, command: str) -> list[str]:
    """The services an edit acts on: ``--service N``, every one with ``--all-services``, or the
    stack's only service. A stack of several services never moves as one unless asked."""
    names = [service.name for service in config.services]
    if name is not None and all_services:
        raise UsageError("--service and --all-services: give one of them")
    if all_services:
        return names
    if name is None:
        if len(names) > 1:
            raise UsageError(f"this stack has {len(names)} services ({', '.join(names)}): name one with --service, "
                             f"or pass --all-services to {command} every one")
        return names
    # One service: a member of a release group keeps in step with the others by the gate
    # (rollout.gates.fleet); a rollback takes its group with it (rollback_services).
    return selected_services(config, name)


def promoted(service: Mapping[str, Any]) -> bool:
    """The stable track runs the canary's release: the release completed and was promoted here."""
    return same_release((service.get("canary") or {}).get("image"), (service.get("stable") or {}).get("image"))


def promoted_line(name: str, service: Mapping[str, Any]) -> str:
    release = (service.get("canary") or {}).get("image")
    return (f"{name}: release {release} is promoted (the stable track runs it): nothing to advance; "
            "`rollout release --image IMAGE` starts the next rollout")


def rollback_services(config: StackConfig, service: str | None) -> list[str]:
    """The services a rollback appends to: every one, or the named one and every member of its release group."""
    names = selected_services(config, service)
    group = config.release_group_of(service) if service is not None else None
    if group is None:
        return names
    return [s.name for s in config.services if s.name in config.release_groups[group]]


def one_service(config: StackConfig, name: str | None, command: str) -> str:
    """The service a release or promote is for: ``--service``, or the stack's only one."""
    names = [service.name for service in config.services]
    if name is None:
        if len(names) > 1:
            raise UsageError(f"--service is required: this stack has {len(names)} services ({', '.join(names)}); "
                             f"`rollout {command}` changes one")
        return names[0]
    if name not in names:
        raise UsageError(f"--service {name}: not a service of this stack; services: {', '.join(names)}")
    return name


def _refuse_on_gates(new_state: Mapping[str, Any], state: Mapping[str, Any], upstream, now: datetime) -> None:
    violations: list[GateViolation] = judge(transition_from_json(new_state, state, None, upstream, now))
    if violations:
        raise Refused([format_violation(v) for v in violations])


def release_edit(
    config: StackConfig, stack: str, service: str, image: str, reason: str | None, now: datetime
) -> Edit:
    """Set ``service``'s canary image to ``image`` and append weight 0 recording the release."""
    if not is_pinned(image):
        raise UsageError(f"--image {image}: not pinned; use a tag other than latest, or a digest (name@sha256:...)")
    state = rollout_state(config, stack, now)
    current = state["services"][service]
    if same_release(current["canary"]["image"], image):
        raise Refused([f"{service}: {image} is already the canary's release ({current['canary']['image']}, at "
                       f"{current['weight']}%); nothing to release"])
    at = max(now, parse_time(current["stageStartedAt"]))
    new_state = with_entry(state, service, 0, at, reason, now, canary_image=image)
    _refuse_on_gates(new_state, state, None, now)
    entry = NewEntry(service, 0, at, reason, release=image, plan=current["plan"])
    return Edit(
        [entry],
        [TrackValue(service, "canary", "image", image)],
        [f"{service}: release {image} starts at 0% from {format_time(at)} "
         f"(was {current['canary']['image']} at {current['weight']}%); stable stays {current['stable']['image']}"],
    )


def completion(service: Mapping[str, Any], now: datetime) -> str | None:
    """Why the service's rollout has not completed at ``now``; None when it has."""
    weight = service["weight"]
    release = service["canary"]["image"]
    if weight != 100:
        return (f"the rollout of {release} is at {weight}% (plan {service['plan']}); it completes after "
                "100% is served for the plan's final soak")
    soak = current_soak(service)
    started = parse_time(service["stageStartedAt"])
    if soak is None or now < started + soak:
        until = f"; complete at {format_time(started + soak)} (in {format_duration(started + soak - now)})" if soak else ""
        return f"the rollout of {release} reached 100% at {format_time(started)} and has not served its final soak{until}"
    return None


def promote_edit(
    config: StackConfig, stack: str, service: str, reason: str | None, now: datetime,
    project: Path | None = None, evidence: dict[str, Any] | None = None,
) -> Edit:
    """After the rollout completed: stable takes the release, the history appends 0.

    Like an advance, a promote is judged against what is deployed (rollout.gates.deployed), with
    ``evidence`` over the final stage when given: the canary within budget over its 100 % stage,
    the final soak covered from when it took its traffic. Without evidence only that judgement
    waits (``rollout check`` and the policy pack refuse a promote without it).
    """

    state = rollout_state(config, stack, now)
    current = state["services"][service]
    release, stable = current["canary"]["image"], current["stable"]["image"]
    if same_release(release, stable):
        raise Refused([f"{service}: the stable track already runs {release}; nothing to promote"])
    why = completion(current, now)
    if why:
        raise Refused([f"{service}: not promoted: {why}"])
    at = max(now, parse_time(current["stageStartedAt"]))
    reason = reason or f"promoted {release} to stable"
    new_state = with_entry(state, service, 0, at, reason, now, stable_image=release, previous_stable_image=stable)
    if project is None:
        _refuse_on_gates(new_state, state, None, now)
    else:
        report = gate_report(stack, project, evidence=evidence, now=now, config=config, new_state=new_state)
        refused = [v for v in report.violations
                   if v.service == service and (evidence is not None or v.policy != CANARY_WITHIN_BUDGET)]
        if refused:
            raise Refused([format_violation(v) for v in refused])
    return Edit(
        [NewEntry(service, 0, at, reason, release=release, plan=current["plan"])],
        [TrackValue(service, "stable", "image", release), TrackValue(service, "stable", "previousImage", stable)],
        [f"{service}: stable {stable} -> {release}; canary back to 0% from {format_time(at)}, with no pods until "
         f"the next release (a revert sets stable.image back to {stable})"],
    )


def apply(path: Path, root: Path, edit: Edit) -> list[str]:
    """Write the edit (one atomic edit of the stack file); returns the lines to print."""
    notes = []
    if append_history(path, edit.entries, root, edit.values):
        notes.append(f"note: {path.name} could not be edited line by line; it was rewritten as a whole (comments kept)")
    return notes


@dataclass(frozen=True)
class Advance:
    """``rollout advance``: the next stage of each selected service, entered at ``now``."""

    #: The rollout state before the advance (each entry's weight before), and after it.
    state: dict[str, Any]
    new_state: dict[str, Any]
    entries: list[NewEntry]
    #: One line per selected service already at its final stage.
    skipped: list[str]


def advance_edit(
    config: StackConfig, stack: str, service: str | list[str] | None, reason: str | None, now: datetime
) -> Advance:
    """The next stage of the plan for each selected service (``--service``, these names, or every one),
    entered at ``now``."""
    state = rollout_state(config, stack, now)
    new_state, entries, skipped = state, [], []
    for name in (service if isinstance(service, list) else selected_services(config, service)):
        current = state["services"][name]
        if promoted(current):
            skipped.append(promoted_line(name, current))
            continue
        if current["nextWeight"] is None:
            skipped.append(f"{name}: at the final stage of plan {current['plan']} ({current['weight']}%); nothing to advance")
            continue
        # Never before the current entry: the history is in time order.
        at = max(now, not_before(config.service(name).rollout.current.started_at))
        entries.append(NewEntry(name, current["nextWeight"], at, reason, release=current["canary"]["image"],
                                plan=current["plan"]))
        new_state = with_entry(new_state, name, current["nextWeight"], at, reason, now)
    return Advance(state, new_state, entries, skipped)


@dataclass(frozen=True)
class Verdict:
    """The gates on an advance: one line per violation (empty: allowed), and remarks to print first."""

    violations: list[str]
    notes: list[str] = field(default_factory=list)


def judge_advance(
    advance: Advance, config: StackConfig, stack: str, project: Path, now: datetime, evidence: dict[str, Any] | None
) -> Verdict:
    """Judge ``advance`` with the gates, against what is deployed (rollout.gates.deployed), never
    the working tree itself. Without evidence only the canary's budget waits (``rollout check``
    and the policy pack judge it)."""
    report = gate_report(stack, project, evidence=evidence, now=now, config=config, new_state=advance.new_state)
    refused = [v for v in report.violations if evidence is not None or v.policy != CANARY_WITHIN_BUDGET]
    return Verdict([format_violation(v) for v in refused], report.notes)


@dataclass(frozen=True)
class Rollback:
    """``rollout rollback``: weight 0 for each selected service, never refused."""

    config: StackConfig
    stack: str
    now: datetime
    entries: list[NewEntry]
    #: A current stage that starts after ``now`` (a clock ahead of this one wrote it).
    notes: list[str]

    def state(self) -> dict[str, Any]:
        """The rollout state before the rollback (for ``--dry-run``)."""
        return rollout_state(self.config, self.stack, self.now)


def rollback_edit(
    path: Path, project: Path, stack: str, service: str | None, reason: str, now: datetime, all_services: bool = False
) -> Rollback:
    """Weight 0 with ``reason`` for the service named (``--service``), every one (``all_services``),
    or the stack's only one, of the stack file at ``path``: the others' rollouts go on untouched.

    Only the stack's own file is validated: a rollback never waits on another stack."""
    config = validate(read_stack_file(path, project), display_path(path, project))
    entries, notes = [], []
    # One service, its release group with it, or every one with --all-services.
    names = acted_on(config, service, all_services, "roll back")
    for name in names if all_services else rollback_services(config, names[0]):
        current_service = config.service(name)
        current = current_service.rollout.current
        if current.started_at > now:
            notes.append(f"note: {name}: the current stage starts at {format_time(current.started_at)}, after "
                         f"{format_time(now)} (a clock ahead of this one wrote it); the rollback is recorded at that "
                         "time, so the history stays in order")
        entries.append(NewEntry(name, 0, max(now, not_before(current.started_at)), reason,
                                release=current_service.canary.image, plan=current_service.rollout.plan))
    return Rollback(config, stack, now, entries, notes)


def upstream_progress(upstream: Mapping[str, Any] | None, service: str, release: str | None, now: datetime) -> str:
    """What the upstream stack has completed with ``release`` (``rollout status``)."""
    if not isinstance(upstream, Mapping):
        return "no state"
    record = (upstream.get("services") or {}).get(service)
    if not isinstance(record, Mapping):
        return f"has no service {service}"
    name = upstream.get("stack")
    if same_release((record.get("stable") or {}).get("image"), release):
        return f"{name} runs {release} on its stable track (promoted): every stage completed"
    canary = (record.get("canary") or {}).get("image")
    if not same_release(canary, release):
        return f"{name} has not run {release} (its canary runs {canary} at {record['weight']}%)"
    weight = record["weight"]
    soak = current_soak(record)
    served = soak is not None and now >= parse_time(record["stageStartedAt"]) + soak
    below = [s["weight"] for s in record.get("stages") or () if s["weight"] < weight]
    completed = weight if served else (max(below) if below else None)
    done = f"completed {completed}%" if completed is not None else "completed no stage yet"
    return f"{name} {done} with {release} (at {weight}%{', soak served' if served else ''})"


__all__ = [
    "Advance",
    "Edit",
    "Refused",
    "Rollback",
    "Verdict",
    "acted_on",
    "advance_edit",
    "apply",
    "completion",
    "judge_advance",
    "one_service",
    "promote_edit",
    "promoted",
    "promoted_line",
    "release_edit",
    "rollback_edit",
    "rollback_services",
    "selected_services",
    "upstream_progress",
]
