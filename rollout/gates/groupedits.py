"""The edits of a fleet: release groups moved as one, emergency overrides and resumes.

- A **release group** (``releaseGroups``) moves together: ``rollout release
  --group G --image SERVICE=IMAGE ...`` starts the new release of every member in
  one edit, ``rollout promote --group G`` promotes every member (each must have
  completed), and ``rollout rollback --service S`` of a member rolls back the
  whole group (:func:`rollout.gates.edits.rollback_services`).
- An **override** (``rollout override``) records who opens the freeze windows
  for a service, why, and until when: a history entry of kind ``override`` that
  keeps the stage. The gates refuse it on a stack that does not allow overrides.
- A **resume** (``rollout resume``) records, in the stack that rolled a release
  back, that the stacks downstream may advance it again (it lifts the fleet halt).

Each edit is judged by the gates before anything is written, as ``release`` and
``promote`` are (:mod:`rollout.gates.edits`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from rollout.gates.edits import Edit, Refused, promote_edit, release_edit, rollback_services  # noqa: F401
from rollout.gates.fleet import halting_rollback
from rollout.gates.judge import judge
from rollout.model.config import StackConfig
from rollout.model.errors import UsageError
from rollout.model.state import rollout_state, with_entry
from rollout.model.stored import parse_service, transition_from_json
from rollout.model.time import format_time, not_before


def group_members(config: StackConfig, group: str) -> list[str]:
    """The services of release group ``group`` (UsageError naming the groups there are)."""
    if group not in config.release_groups:
        known = ", ".join(config.release_groups) or "none"
        raise UsageError(f"--group {group}: not a release group of this stack; release groups: {known}")
    return list(config.release_groups[group])


def parse_images(values: list[str], members: list[str], group: str) -> dict[str, str]:
    """``SERVICE=IMAGE`` pairs, one for each member of the group and no other."""
    images: dict[str, str] = {}
    for value in values:
        service, sep, image = value.partition("=")
        if not sep or not service or not image:
            raise UsageError(f"--image {value[:100]!r}: with --group, each --image is SERVICE=IMAGE")
        if service not in members:
            raise UsageError(f"--image {service}=...: {service} is not in release group {group} ({', '.join(members)})")
        if service in images:
            raise UsageError(f"--image {service}=...: given twice")
        images[service] = image
    missing = [m for m in members if m not in images]
    if missing:
        raise UsageError(f"--group {group}: no --image for {', '.join(missing)}; a group's release names every member")
    return images


def _combined(edits: list[Edit]) -> Edit:
    return Edit([e for edit in edits for e in edit.entries], [v for edit in edits for v in edit.values],
                [line for edit in edits for line in edit.lines])


def release_group_edit(config: StackConfig, stack: str, group: str, images: dict[str, str], reason: str | None,
                       now: datetime) -> Edit:
    """Every member of ``group`` starts its new release at 0 %, in one edit."""
    return _combined([release_edit(config, stack, service, images[service], reason, now)
                      for service in group_members(config, group)])


def promote_group_edit(config: StackConfig, stack: str, group: str, reason: str | None, now: datetime) -> Edit:
    """Every member of ``group`` promoted; refused, naming each, unless every member completed."""
    edits, refusals = [], []
    for service in group_members(config, group):
        try:
            edits.append(promote_edit(config, stack, service, reason, now))
        except Refused as refused:
            refusals += refused.lines
    if refusals:
        raise Refused([*refusals, f"release group {group} is promoted only when every member completed"])
    return _combined(edits)


def _annotation(config: StackConfig, stack: str, services: list[str], now: datetime, kind: str, by: str,
                reason: str, until: datetime | None, upstream: Mapping[str, Any] | None = None) -> Edit:
    from rollout.load.stackfile import NewEntry

    state = rollout_state(config, stack, now)
    new_state, entries, lines = state, [], []
    for service in services:
        current = state["services"][service]
        at = max(now, not_before(config.service(service).rollout.current.started_at))
        new_state = with_entry(new_state, service, current["weight"], at, reason, now, kind=kind, by=by, until=until)
        entries.append(NewEntry(service, current["weight"], at, reason, release=current["canary"]["image"],
                                plan=current["plan"], kind=kind, by=by, until=until))
        what = f"opens the freeze windows until {format_time(until)}" if until else \
            f"lifts the halt of {current['canary']['image']} downstream"
        lines.append(f"{service}: {kind} by {by} from {format_time(at)}: {what} ({reason})")
    violations = judge(transition_from_json(new_state, state, None, upstream, now))
    if violations:
        from rollout.gates.check import format_violation

        raise Refused([format_violation(v) for v in violations])
    return Edit(entries, [], lines)


def override_edit(config: StackConfig, stack: str, services: list[str], by: str, reason: str, until: datetime,
                  now: datetime) -> Edit:
    """An emergency override of the freeze windows for ``services`` until ``until``."""
    if not config.freeze.allow_override:
        raise Refused([f"{stack} does not allow overrides (rollout:freeze.allowOverride is false): "
                       "its freeze windows hold"])
    if until <= now:
        raise UsageError(f"--until {format_time(until)}: must be after now ({format_time(now)})")
    return _annotation(config, stack, services, now, "override", by, reason, until)


def resume_edit(config: StackConfig, stack: str, services: list[str], by: str, reason: str, now: datetime) -> Edit:
    """A resume of each service's rolled-back release: the stacks downstream may advance it again."""
    state = rollout_state(config, stack, now)
    halted = []
    for service in services:
        record = parse_service(service, state["services"][service])
        rollback = halting_rollback(record, record.canary_image)
        if rollback is not None:
            halted.append(service)
    if not halted:
        raise Refused([f"{', '.join(services)}: no rollback of the current release halts the stacks downstream; "
                       "nothing to resume"])
    return _annotation(config, stack, halted, now, "resume", by, reason, None)


__all__ = ["group_members", "override_edit", "parse_images", "promote_group_edit",
           "release_group_edit", "resume_edit", "rollback_services"]
