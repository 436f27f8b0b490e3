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


def promotes_from(t: Transition) -> str | None:
    """The upstream the change is judged against: the deployed one while it has one."""
    deployed = t.deployed.promotes_from if t.deployed is not None else None
    return deployed or t.proposed.promotes_from


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


def loosenings(t: Transition) -> list[str]:
    """Each safety setting the change loosens against the deployed state, as one line each."""
    if t.deployed is None:
        return []
    old, new = t.deployed, t.proposed
    found = []
    if old.promotes_from and old.promotes_from != new.promotes_from:
        found.append(f"promotesFrom {old.promotes_from} → {_shown(new.promotes_from)}")
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


__all__ = ["Pair", "loosenings", "next_stage", "pairs", "promotes_from", "raises_weight", "removed",
           "safety_flags_on", "soak_left", "thresholds", "tier"]
