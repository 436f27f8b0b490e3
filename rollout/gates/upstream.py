"""The gates that look beyond the service: the upstream stack and the safety flags.

``rollout-staging-first``
    A stack with ``promotesFrom`` enters stage w of release R only after the
    upstream stack completed stage w with R: the upstream's canary runs R and
    is past w, or at w with its soak served; or the upstream promoted R to its
    stable track (which it may only after completing R).
``rollout-no-safety-flag-on-advance``
    No safety flag is on in the new state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from rollout.gates.history import _stored, _text, unreadable_service
from rollout.gates.names import NO_SAFETY_FLAG_ON_ADVANCE, STAGING_FIRST
from rollout.model.releases import same_release
from rollout.model.state import current_soak
from rollout.model.time import format_time, parse_time


def _staging_first(name: str, new_state: Mapping[str, Any], upstream_state: Mapping[str, Any] | None, now: datetime):
    upstream_name = new_state.get("promotesFrom")
    if not upstream_name:
        return []
    target = new_state["services"][name]["weight"]
    if not isinstance(upstream_state, Mapping):
        return [(STAGING_FIRST, f"no state of {upstream_name} to show it completed the {target}% stage")]
    if upstream_state.get("stack") != upstream_name:
        return [(STAGING_FIRST, f"the upstream state is for stack {upstream_state.get('stack')!r}, "
                 f"not {upstream_name!r}")]
    services = upstream_state.get("services")
    upstream = services.get(name) if isinstance(services, Mapping) else None
    if not upstream:
        return [(STAGING_FIRST, f"{upstream_name} has no service {name}")]
    why = _stored(unreadable_service(upstream))
    if why:
        return [(STAGING_FIRST, f"{upstream_name}: {why}")]
    release = new_state["services"][name].get("release")
    if release is None:
        return [(STAGING_FIRST, "the new state records no release for this service, so the upstream's cannot be "
                 "compared")]
    up_canary = (upstream.get("canary") or {}).get("image")
    up_stable = (upstream.get("stable") or {}).get("image")
    if up_canary is None and up_stable is None:
        return [(STAGING_FIRST, f"{upstream_name}'s state records no release (an older rollout state)")]
    if same_release(up_stable, release):
        return []  # promoted there: stable only takes a release that completed
    weight = upstream["weight"]
    if not same_release(up_canary, release):
        return [(STAGING_FIRST, f"{upstream_name} has not run release {release}: its canary runs {_text(up_canary)} "
                 f"(at {weight}%) and its stable {_text(up_stable)}; {upstream_name} must complete {target}% with "
                 f"{release} first")]
    if weight > target:
        return []
    if weight < target:
        return [(STAGING_FIRST, f"{upstream_name} is at {weight}% with {release}; it must complete {target}% first")]
    soak = current_soak(upstream)
    started = parse_time(upstream["stageStartedAt"])
    if soak is None or now < started + soak:
        until = f" (until {format_time(started + soak)})" if soak is not None else ""
        return [(STAGING_FIRST, f"{upstream_name} entered {target}% with {release} at {format_time(started)} and "
                 f"has not completed its soak{until}")]
    return []


def _no_safety_flag(new_state: Mapping[str, Any]):
    flags = new_state.get("safetyFlagsOn") or []
    if flags:
        return [(NO_SAFETY_FLAG_ON_ADVANCE, f"the safety flag {', '.join(flags)} is on; "
                 "no stage may be entered until it is off")]
    return []
