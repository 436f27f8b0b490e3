"""The gates of the fleet: the stacks around this one, the services that move together, the calendar.

``rollout-fleet-halt``
    A rollback of release R of a service in any stack upstream of this one (its
    ``promotesFrom``, followed to the roots) refuses every advance of R of that
    service here, until a new release (R is then no longer what advances) or a
    ``resume`` entry of R recorded in that stack's history after the rollback.
    A stack whose stable track runs R promoted it: its drop to 0 % was no rollback.
``rollout-fleet-limit``
    A stack of a fleet group (``fleet.group``) enters its first stage above 0 %
    with release R only while fewer than ``fleet.maxInProgress`` other stacks of
    the group hold R above 0 %, unless one of them already completed R (100 % for
    the final soak, or promoted). Read from the deployed states of the group's
    stacks, and the states their files propose (a change that starts two of them
    at once counts both); one that cannot be read refuses (nothing above the
    limit is judged on a guess).
``rollout-release-group-in-step``
    A member of a release group (``releaseGroups``) enters stage w only when
    every other member completed the stage below w: it is past it, or at it with
    its soak served, in the deployed state.
``rollout-freeze-window``
    An advance, a release (a new canary image) or a promote (a new stable image)
    whose stage would begin (now, and at the entry's ``startedAt``) inside a
    freeze window of the deployed or the proposed state is refused, unless an
    ``override`` entry of that service covers the instant and both states allow
    overrides. A new override entry on a stack that does not allow overrides is
    refused on any change. A rollback is never refused.
"""

from __future__ import annotations

from datetime import datetime

from rollout.gates.history import deployed_complete
from rollout.gates.names import FLEET_HALT, FLEET_LIMIT, FREEZE_WINDOW, RELEASE_GROUP_IN_STEP
from rollout.gates.ratchet import (
    Pair,
    fleet_groups,
    freezes,
    overrides_allowed,
    promotes_from,
    release_group_members,
)
from rollout.model.freeze import Calendar, Window
from rollout.model.releases import same_release
from rollout.model.time import format_time
from rollout.model.transition import Entry, Service, StackState, Transition

Found = list[tuple[str, str]]


# --- reading another stack's record of a service ---------------------------------------------


def _other_state(t: Transition, stack: str) -> tuple[StackState | None, str | None]:
    """A stack's deployed state as the fleet gates read it, or why it is not known."""
    if t.fleet is not None:
        if stack in t.fleet.states:
            return t.fleet.states[stack], None
        if stack in t.fleet.problems:
            return None, t.fleet.problems[stack]
    state, problem = t.upstream_of(stack)
    return (state, problem) if state is not None and state.stack == stack else (None, problem)


def _record(state: StackState, pair: Pair) -> Service | None:
    return state.services.get(pair.name) or (state.services.get(pair.took_over) if pair.took_over else None)


def halting_rollback(service: Service, release: str | None) -> Entry | None:
    """The rollback of ``release`` in ``service``'s history that still halts the stacks downstream.

    A stage entry whose weight drops below the stage before it, both with
    ``release``; lifted by a later ``resume`` entry of the release. None when the
    stable track runs the release: the drop was the promote that completed it.
    """
    if release is None:
        return None
    halted: Entry | None = None
    previous: Entry | None = None
    for entry in service.history:
        if entry.kind == "resume" and halted is not None and same_release(entry.release or release, release):
            halted = None
        if not entry.is_stage:
            continue
        # An entry written by hand records no release: it is the canary's.
        if previous is not None and entry.weight < previous.weight \
                and same_release(previous.release or service.canary_image, release) \
                and same_release(entry.release or service.canary_image, release):
            halted = entry
        previous = entry
    # Promoted there: the drop to 0 % was the promote that completed it, and stable runs it.
    return None if same_release(service.stable_image, release) else halted


def holds(service: Service, release: str | None, now: datetime) -> str:
    """``completed`` (the release completed or was promoted there), ``holding`` (above 0 % with it), or ``no``."""
    if release is None:
        return "no"
    if same_release(service.stable_image, release):
        return "completed"
    if not same_release(service.canary_image, release):
        return "no"
    if deployed_complete(service, now)[0]:
        return "completed"
    return "holding" if service.weight > 0 else "no"


# --- the gates -----------------------------------------------------------------------------


def fleet_halt(pair: Pair, t: Transition) -> Found:
    release = pair.proposed.canary_image
    ancestors = t.fleet.ancestors if t.fleet is not None else promotes_from(t)
    found: Found = []
    for stack in ancestors:
        state, _ = _other_state(t, stack)
        record = _record(state, pair) if state is not None else None
        if record is None:
            continue  # staging-first names an upstream that cannot be read; a farther one has nothing of it
        rollback = halting_rollback(record, release)
        if rollback is not None:
            why = f" ({rollback.reason})" if rollback.reason else ""
            found.append((FLEET_HALT, f"{stack} rolled back {release} at {format_time(rollback.started_at)}{why}: "
                          f"every stack downstream of {stack} holds {release}; release a new image, or record "
                          f"`rollout resume --stack {stack}` there"))
    return found


def fleet_limit(pair: Pair, t: Transition) -> Found:
    if pair.deployed_weight > 0 or pair.proposed.weight == 0:
        return []  # only entering traffic counts against the limit
    release = pair.proposed.canary_image
    found: Found = []
    for group, limit in fleet_groups(t).items():
        limit = 1 if limit is None else limit
        if t.fleet is None:
            found.append((FLEET_LIMIT, f"the deployed states of fleet group {group}'s stacks were not read: the "
                          f"limit of {limit} cannot be shown"))
            continue
        members = t.fleet.groups.get(group, ())
        holding, unknown = [], []
        completed = False
        for stack in members:
            state, problem = _other_state(t, stack)
            if state is None and problem:
                unknown.append(f"{stack} ({problem})")
                continue
            # Deployed (never deployed: holds nothing), or proposed by the same change: both count.
            record = _record(state, pair) if state is not None else None
            standing = holds(record, release, t.now) if record is not None else "no"
            completed = completed or standing == "completed"
            change = t.fleet.proposed.get(stack)
            proposed = _record(change, pair) if change is not None else None
            if standing == "holding":
                holding.append(f"{stack} at {record.weight}%")
            elif proposed is not None and holds(proposed, release, t.now) == "holding":
                holding.append(f"{stack} at {proposed.weight}% (proposed)")
        if completed:
            continue
        if unknown:
            found.append((FLEET_LIMIT, f"fleet group {group}: the deployed state of {', '.join(unknown)} cannot be "
                          "read, so the stacks holding the release cannot be counted"))
        elif len(holding) >= limit:
            found.append((FLEET_LIMIT, f"fleet group {group} allows {limit} stack(s) above 0% with {release} before "
                          f"one completes it; {len(holding)} hold it ({', '.join(holding)})"))
    return found


def release_group_in_step(pair: Pair, t: Transition) -> Found:
    target = pair.proposed.weight
    # The stage below: the deployed one; never deployed, the plan's stage before the target.
    below = pair.deployed_weight if pair.deployed is not None else \
        max((w for w in pair.proposed.weights if w < target), default=0)
    side = t.deployed if t.deployed is not None and pair.deployed is not None else t.proposed
    found: Found = []
    for group, members in release_group_members(t, pair.name).items():
        for member in members:
            if member == pair.name:
                continue
            other = side.services.get(member) or t.proposed.services.get(member)
            if other is None:
                found.append((RELEASE_GROUP_IN_STEP, f"release group {group} names {member}, which is not a service "
                              "of this stack"))
                continue
            if other.weight > below:
                continue
            if other.weight == below:
                soak = other.current_soak
                if soak is not None and t.now >= other.stage_started_at + soak:
                    continue
                until = f" (it completes it at {format_time(other.stage_started_at + soak)})" if soak else ""
                found.append((RELEASE_GROUP_IN_STEP, f"{member} of release group {group} has not completed the "
                              f"{below}% stage{until}; {pair.name} enters {target}% only after every member did"))
            else:
                found.append((RELEASE_GROUP_IN_STEP, f"{member} of release group {group} is at {other.weight}%: every "
                              f"member completes {below}% before {pair.name} enters {target}% (a rollback of one "
                              "member is a rollback of the group)"))
    return found


def change_kind(pair: Pair) -> str | None:
    """``advance``, ``release`` or ``promote`` when the change begins a stage the freeze judges; else None."""
    old, new = pair.deployed, pair.proposed
    if pair.raises:
        return "advance"
    if old is None:
        return None
    appended = len(new.history) > len(old.history)
    if appended and not same_release(old.stable_image, new.stable_image) and new.stable_image is not None:
        return "promote"
    if appended and not same_release(old.canary_image, new.canary_image) and new.canary_image is not None:
        return "release"
    return None


def new_entries(pair: Pair) -> tuple[Entry, ...]:
    return pair.proposed.history[len(pair.deployed.history) if pair.deployed is not None else 0:]


def override_at(service: Service, instant: datetime) -> Entry | None:
    """The override entry of ``service`` that covers ``instant``."""
    return next((e for e in reversed(service.history)
                 if e.kind == "override" and e.started_at <= instant and e.until is not None and instant < e.until), None)


def freeze_window(pair: Pair, t: Transition) -> Found:
    found: Found = []
    allowed = overrides_allowed(t)
    if not allowed and pair.deployed is not None:
        for entry in new_entries(pair):
            if entry.kind == "override":
                found.append((FREEZE_WINDOW, f"an override by {entry.by} until {format_time(entry.until)} is recorded, "
                              "but this stack does not allow overrides (freeze.allowOverride is false)"))
    kind = change_kind(pair)
    if kind is None:
        return found
    instants = sorted({t.now, pair.proposed.stage_started_at} if pair.proposed.stage_started_at > (
        pair.deployed.stage_started_at if pair.deployed is not None else pair.proposed.stage_started_at) else {t.now})
    for freeze in freezes(t):
        calendar = Calendar(freeze.time_zone, tuple(Window(w.name, w.start, w.end) for w in freeze.windows))
        for instant in instants:
            hit = calendar.covering(instant)
            if hit is None:
                continue
            window, ends = hit
            override = override_at(pair.proposed, instant)
            if override is not None and allowed:
                continue
            note = ("; an override is recorded, but this stack does not allow overrides" if override is not None
                    else "; an override needs freeze.allowOverride and `rollout override`" if not allowed
                    else "; or record an emergency override (`rollout override`)")
            found.append((FREEZE_WINDOW, f"the {kind} of {pair.name} would begin at {format_time(instant)}, inside "
                          f"freeze window {window.name} ({window.start} to {window.end}, {freeze.time_zone}) which "
                          f"ends {format_time(ends)}{note}"))
            break
    return found


def overrides_in_effect(t: Transition) -> list[str]:
    """Each override a change records or relies on, one line each (the check prints them, the comment shows them)."""
    from rollout.gates.ratchet import pairs

    lines = []
    for pair in pairs(t):
        for entry in pair.proposed.history:
            if entry.kind == "override" and entry.until is not None and entry.until > t.now:
                lines.append(f"{pair.name}: by {entry.by} from {format_time(entry.started_at)} until "
                             f"{format_time(entry.until)}: {entry.reason}")
    return lines


__all__ = ["change_kind", "fleet_halt", "fleet_limit", "freeze_window", "halting_rollback", "holds",
           "override_at", "overrides_in_effect", "release_group_in_step"]
