"""The ratchet: every setting a gate reads is judged by the stricter of deployed and proposed.

A change may loosen a safety setting (delete ``promotesFrom``, switch a safety
flag off, shorten a soak, lower the tier, loosen a threshold, move the
namespace, remove or re-route a service), but only in a change that raises no
weight: :func:`loosenings` lists each one ("promotesFrom staging → none"), the
check prints them and the pull request's comment shows them, and the gate
``rollout-no-loosening-on-advance`` refuses them beside any advance. Until a
loosening is deployed, every advance is judged by the stricter value anyway.

A service is what it serves (:func:`pairs`): a new key whose route (hostnames and
matches) is a deployed service's that is gone from the proposal is that service,
with its history and gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rollout.model.durations import format_duration
from rollout.model.transition import (
    CONFIG_KEYS,
    THRESHOLDS,
    TIERS,
    Freeze,
    Service,
    StackState,
    Thresholds,
    Transition,
)


@dataclass(frozen=True)
class Pair:
    """A proposed service and what is deployed of it (None: never deployed)."""

    name: str
    proposed: Service
    deployed: Service | None
    #: The deployed key this service took the route of (a rename), when not its own.
    took_over: str | None = None

    @property
    def deployed_weight(self) -> int:
        return self.deployed.weight if self.deployed is not None else 0

    @property
    def raises(self) -> bool:
        return self.proposed.weight > self.deployed_weight


def pairs(t: Transition) -> list[Pair]:
    """Each proposed service with its deployed self: by key, else by the route it takes over."""
    deployed = dict(t.deployed.services) if t.deployed is not None else {}
    proposed = t.proposed.services
    orphans = {name: service for name, service in deployed.items() if name not in proposed}
    found = []
    for name in sorted(proposed):
        service = proposed[name]
        if name in deployed:
            found.append(Pair(name, service, deployed[name]))
            continue
        route = service.route
        match = next((key for key, old in sorted(orphans.items())
                      if route is not None and old.route is not None and old.route.identity == route.identity), None)
        if match is not None:
            found.append(Pair(name, service, orphans.pop(match), took_over=match))
        else:
            found.append(Pair(name, service, None))
    return found


def removed(t: Transition) -> list[str]:
    """Deployed services that neither stay under their key nor are taken over by their route."""
    taken = {p.took_over for p in pairs(t)}
    return sorted(name for name in (t.deployed.services if t.deployed else {})
                  if name not in t.proposed.services and name not in taken)


def raises_weight(t: Transition) -> bool:
    return any(p.raises for p in pairs(t))


# --- the stricter value of each setting -----------------------------------------------------


def promotes_from(t: Transition) -> tuple[str, ...]:
    """The upstreams the change is judged against: the deployed ones and any the proposal adds
    (removing one is a loosening, judged by the deployed value until it is deployed)."""
    deployed = t.deployed.promotes_from if t.deployed is not None else ()
    return tuple(dict.fromkeys((*deployed, *t.proposed.promotes_from)))


def fleet_groups(t: Transition) -> dict[str, int | None]:
    """Each fleet-limit group the stack counts against (deployed or proposed) and its smallest limit."""
    found: dict[str, int | None] = {}
    for state in (t.deployed, t.proposed):
        if state is None or state.fleet_group is None:
            continue
        limits = [v for v in (found.get(state.fleet_group), state.fleet_limit) if v is not None]
        found[state.fleet_group] = min(limits) if limits else None
    return found


def release_group_members(t: Transition, service: str) -> dict[str, tuple[str, ...]]:
    """The release groups ``service`` is in, deployed or proposed, with every member of each."""
    found: dict[str, set[str]] = {}
    for state in (t.deployed, t.proposed):
        for group, members in (state.release_groups.items() if state is not None else ()):
            if service in members:
                found.setdefault(group, set()).update(members)
    return {group: tuple(sorted(members)) for group, members in sorted(found.items())}


def freezes(t: Transition) -> list[Freeze]:
    """The freeze windows of the deployed and the proposed state: an instant either freezes is frozen."""
    return [state.freeze for state in (t.deployed, t.proposed) if state is not None and state.freeze.windows]


def overrides_allowed(t: Transition) -> bool:
    """Whether an override may open a window: both the deployed and the proposed state allow it."""
    return all(state.freeze.allow_override for state in (t.deployed, t.proposed) if state is not None)


def tier(proposed: StackState | None, deployed: StackState | None) -> str | None:
    """The stricter tier (production over staging over development)."""
    known = [s.tier for s in (proposed, deployed) if s is not None and s.tier in TIERS]
    return max(known, key=TIERS.index) if known else (proposed.tier if proposed is not None else None)


def safety_flags_on(t: Transition) -> tuple[str, ...]:
    """Every safety flag on in the deployed or the proposed state."""
    deployed = t.deployed.safety_flags_on if t.deployed is not None else ()
    return tuple(sorted(set(deployed) | set(t.proposed.safety_flags_on)))


def thresholds(t: Transition) -> Thresholds:
    """The stricter of the proposed and the deployed thresholds."""
    deployed = t.deployed.thresholds if t.deployed is not None else Thresholds()
    values = {}
    for field, (_, lower_is_stricter) in THRESHOLDS.items():
        known = [v for v in (getattr(t.proposed.thresholds, field), getattr(deployed, field)) if v is not None]
        if known:
            values[field] = min(known) if lower_is_stricter else max(known)
    return Thresholds(**values)


def soak_left(pair: Pair) -> timedelta | None:
    """The soak of the deployed stage being left: the longest the deployed or the proposed plan gives it."""
    old, new, weight = pair.deployed, pair.proposed, pair.deployed_weight
    soaks = [s for s in (old.current_soak if old else None, old.soak_at(weight) if old else None,
                         new.soak_at(weight)) if s is not None]
    return max(soaks) if soaks else None


def next_stage(pair: Pair) -> int | None:
    """The next stage above the deployed weight: the nearest either plan has."""
    weight = pair.deployed_weight
    found = [w for w in (pair.deployed.next_weight(weight) if pair.deployed else None,
                         pair.proposed.next_weight(weight)) if w is not None]
    return min(found) if found else None


# --- what a change loosens ---------------------------------------------------------------


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _plan_loosenings(name: str, old: Service, new: Service) -> list[str]:
    found = []
    shorter = [(w, old.soak_at(w), new.soak_at(w)) for w in old.weights
               if new.soak_at(w) is not None and new.soak_at(w) < old.soak_at(w)]
    dropped = [w for w in old.weights if w not in new.weights]
    if old.plan != new.plan and (shorter or dropped):
        found.append(f"plan of {name} {old.plan} → {new.plan}")
    for weight, before, after in shorter:
        found.append(f"soak of {name}'s {weight}% stage {_shown(before)} → {_shown(after)}")
    if dropped:
        found.append(f"stages of {name} {', '.join(f'{w}%' for w in dropped)} dropped")
    return found


def _fleet_loosenings(old: StackState, new: StackState) -> list[str]:
    """The fleet's settings: the limit's group and its limit, the release groups, the freeze windows."""
    found = []
    if old.fleet_group is not None and old.fleet_group != new.fleet_group:
        found.append(f"fleet.group {old.fleet_group} → {_shown(new.fleet_group)}")
    elif old.fleet_limit is not None and (new.fleet_limit is None or new.fleet_limit > old.fleet_limit):
        found.append(f"fleet.maxInProgress {old.fleet_limit} → {_shown(new.fleet_limit)}")
    for group, members in sorted(old.release_groups.items()):
        kept = new.release_groups.get(group, ())
        if set(members) - set(kept):
            found.append(f"release group {group} {', '.join(members)} → {', '.join(kept) or 'none'}")
    before, after = old.freeze, new.freeze
    if before.windows and after.time_zone != before.time_zone:
        found.append(f"freeze.timeZone {before.time_zone} → {after.time_zone}")
    for window in before.windows:
        if window not in after.windows:
            found.append(f"freeze window {window.name} ({window.start} to {window.end}) removed or changed")
    if after.allow_override and not before.allow_override:
        found.append("freeze.allowOverride false → true")
    return found


def loosenings(t: Transition) -> list[str]:
    """Each safety setting the change loosens against the deployed state, as one line each."""
    if t.deployed is None:
        return []
    old, new = t.deployed, t.proposed
    found = []
    if set(old.promotes_from) - set(new.promotes_from):
        found.append(f"promotesFrom {', '.join(old.promotes_from)} → {', '.join(new.promotes_from) or 'none'}")
    found += _fleet_loosenings(old, new)
    if old.tier in TIERS and new.tier in TIERS and TIERS.index(new.tier) < TIERS.index(old.tier):
        found.append(f"tier {old.tier} → {new.tier}")
    for flag in sorted(set(old.safety_flags_on) - set(new.safety_flags_on)):
        found.append(f"safety flag {flag} on → off")
    for field, (key, lower_is_stricter) in THRESHOLDS.items():
        before, after = getattr(old.thresholds, field), getattr(new.thresholds, field)
        if before is None:
            continue
        if after is None or (after > before if lower_is_stricter else after < before):
            shown = key.removesuffix('Seconds') if field == 'evidence_max_age' else CONFIG_KEYS.get(key, key)
            found.append(f"canary.{shown} {_shown(before)} → {_shown(after)}")
    if old.namespace is not None and old.namespace != new.namespace:
        found.append(f"namespace {old.namespace} → {_shown(new.namespace)}")
    for name in removed(t):
        found.append(f"service {name} removed")
    for pair in pairs(t):
        before, after = pair.deployed, pair.proposed
        if before is None:
            continue
        if pair.took_over:
            found.append(f"service {pair.took_over} renamed {pair.name}")
        if before.route is not None and after.route is not None and before.route.identity != after.route.identity:
            found.append(f"route of {pair.name} {before.route.shown()} → {after.route.shown()}")
        found += _plan_loosenings(pair.name, before, after)
    return found


__all__ = ["Pair", "fleet_groups", "freezes", "loosenings", "next_stage", "overrides_allowed", "pairs",
           "promotes_from", "raises_weight", "release_group_members", "removed", "safety_flags_on", "soak_left",
           "thresholds", "tier"]
