"""``rollout release`` and ``rollout promote``: the two edits that change what a stack runs.

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

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from rollout.model.config import StackConfig
from rollout.model.durations import format_duration
from rollout.model.errors import UsageError
from rollout.gates.judge import GateViolation, judge
from rollout.model.stored import transition_from_json
from rollout.model.releases import same_release
from rollout.model.state import current_soak, rollout_state, with_entry
from rollout.model.time import format_time, parse_time


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
        from rollout.gates.check import format_violation

        raise Refused([format_violation(v) for v in violations])


def release_edit(
    config: StackConfig, stack: str, service: str, image: str, reason: str | None, now: datetime
) -> Edit:
    """Set ``service``'s canary image to ``image`` and append weight 0 recording the release."""
    from rollout.model.releases import is_pinned
    from rollout.load.stackfile import NewEntry, TrackValue

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


def promote_edit(config: StackConfig, stack: str, service: str, reason: str | None, now: datetime) -> Edit:
    """After the rollout completed: stable takes the release, the history appends 0."""
    from rollout.load.stackfile import NewEntry, TrackValue

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
    _refuse_on_gates(new_state, state, None, now)
    return Edit(
        [NewEntry(service, 0, at, reason, release=release, plan=current["plan"])],
        [TrackValue(service, "stable", "image", release), TrackValue(service, "stable", "previousImage", stable)],
        [f"{service}: stable {stable} -> {release}; canary back to 0% from {format_time(at)} "
         f"(a revert sets stable.image back to {stable})"],
    )


def apply(path: Path, root: Path, edit: Edit) -> list[str]:
    """Write the edit (one atomic edit of the stack file); returns the lines to print."""
    from rollout.load.stackfile import append_history

    notes = []
    if append_history(path, edit.entries, root, edit.values):
        notes.append(f"note: {path.name} could not be edited line by line; it was rewritten as a whole (comments kept)")
    return notes


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


__all__ = ["Edit", "Refused", "apply", "completion", "one_service", "promote_edit", "release_edit", "upstream_progress"]
