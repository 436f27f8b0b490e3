"""The gates that look beyond the service: the upstream stack, the safety flags, the change itself.

``rollout-staging-first``
    A stack with ``promotesFrom`` (the deployed upstreams and any the proposal adds;
    a list names several, and every one must have completed the stage) enters
    stage w of release R only after the upstream stack completed stage w with R:
    the upstream's canary runs R and is past w, or at w with its soak served; or
    the upstream promoted R to its stable track (which it may only after
    completing R). On every change, a new service's stable track runs only a
    release the upstream's stable track runs.
``rollout-no-safety-flag-on-advance``
    No safety flag is on, in the deployed or the proposed state.
``rollout-no-loosening-on-advance``
    A change that raises a weight loosens nothing (:func:`rollout.gates.ratchet.loosenings`).
``rollout-stack-files-only``
    A change that raises a weight changes nothing but stack files.
"""

from __future__ import annotations

from rollout.gates.history import text
from rollout.gates.names import (
    NO_LOOSENING_ON_ADVANCE,
    NO_SAFETY_FLAG_ON_ADVANCE,
    STACK_FILES_ONLY,
    STAGING_FIRST,
)
from rollout.gates.ratchet import Pair, loosenings, promotes_from, safety_flags_on
from rollout.model.releases import same_release
from rollout.model.time import format_time
from rollout.model.transition import Service, Transition

Found = list[tuple[str, str]]


def _upstream_service(pair: Pair, t: Transition, name: str) -> tuple[Service | None, Found]:
    """The upstream ``name``'s record of this service, or why there is none."""
    what = f"the {pair.proposed.weight}% stage"
    upstream, problem = t.upstream_of(name)
    if problem:
        return None, [(STAGING_FIRST, f"{name}: {problem}")]
    if upstream is None:
        return None, [(STAGING_FIRST, f"no state of {name} to show it completed {what}")]
    if upstream.stack != name:
        return None, [(STAGING_FIRST, f"the upstream state is for stack {upstream.stack!r}, not {name!r}")]
    record = upstream.services.get(pair.name) or (upstream.services.get(pair.took_over) if pair.took_over else None)
    if record is None:
        return None, [(STAGING_FIRST, f"{name} has no service {pair.name}")]
    return record, []


def staging_first(pair: Pair, t: Transition) -> Found:
    """Every upstream (``promotesFrom`` may name several) completed the stage with the release."""
    found: Found = []
    for name in promotes_from(t):
        found += _completed_upstream(pair, t, name)
    return found


def _completed_upstream(pair: Pair, t: Transition, name: str) -> Found:
    upstream, found = _upstream_service(pair, t, name)
    if upstream is None:
        return found
    target, release = pair.proposed.weight, pair.proposed.canary_image
    if release is None:
        return [(STAGING_FIRST, "the new state records no release for this service, so the upstream's cannot be "
                 "compared")]
    up_canary, up_stable = upstream.canary_image, upstream.stable_image
    if up_canary is None and up_stable is None:
        return [(STAGING_FIRST, f"{name}'s state records no release (an older rollout state)")]
    if same_release(up_stable, release):
        return []  # promoted there: stable only takes a release that completed
    weight = upstream.weight
    if not same_release(up_canary, release):
        return [(STAGING_FIRST, f"{name} has not run release {release}: its canary runs {text(up_canary)} "
                 f"(at {weight}%) and its stable {text(up_stable)}; {name} must complete {target}% with "
                 f"{release} first")]
    if weight > target:
        return []
    if weight < target:
        return [(STAGING_FIRST, f"{name} is at {weight}% with {release}; it must complete {target}% first")]
    soak, started = upstream.current_soak, upstream.stage_started_at
    if soak is None or t.now < started + soak:
        until = f" (until {format_time(started + soak)})" if soak is not None else ""
        return [(STAGING_FIRST, f"{name} entered {target}% with {release} at {format_time(started)} and "
                 f"has not completed its soak{until}")]
    return []


def new_service_stable(pair: Pair, t: Transition) -> Found:
    """A service new to a stack with ``promotesFrom`` starts on a stable release every upstream runs."""
    if pair.deployed is not None:
        return []
    found: Found = []
    for name in promotes_from(t):
        upstream, why = _upstream_service(pair, t, name)
        if upstream is None:
            found += [(policy, f"a new service's stable track must run what {name}'s stable track runs: {reason}")
                      for policy, reason in why]
            continue
        stable = pair.proposed.stable_image
        if not same_release(upstream.stable_image, stable):
            found.append((STAGING_FIRST, f"the new service's stable.image {text(stable)} is not what {name}'s stable "
                          f"track runs ({text(upstream.stable_image)}): a new service takes traffic only on a release "
                          f"{name} runs as stable"))
    return found


def no_safety_flag(t: Transition) -> Found:
    flags = safety_flags_on(t)
    if flags:
        return [(NO_SAFETY_FLAG_ON_ADVANCE, f"the safety flag {', '.join(flags)} is on; "
                 "no stage may be entered until it is off")]
    return []


def no_loosening(t: Transition) -> Found:
    return [(NO_LOOSENING_ON_ADVANCE, f"this change raises a weight and loosens {what}: land the loosening in a "
             "change of its own that raises no weight") for what in loosenings(t)]


def stack_files_only(t: Transition) -> Found:
    if t.changed_files is None:
        return []
    others = [path for path in t.changed_files if not is_stack_file(path)]
    if not others:
        return []
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    return [(STACK_FILES_ONLY, f"this change raises a weight and also changes {shown}: an advance changes only "
             "stack files (stacks/Pulumi.<stack>.yaml)")]


def is_stack_file(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and parts[0] == "stacks" and parts[1].startswith("Pulumi.") and parts[1].endswith(".yaml")


__all__ = ["is_stack_file", "new_service_stable", "no_loosening", "no_safety_flag", "stack_files_only",
           "staging_first"]
