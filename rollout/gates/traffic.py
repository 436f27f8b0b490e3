"""The gates of the traffic a canary takes: the next stage only, the soak served, the live route.

``rollout-next-stage-only``
    The new weight is the first stage of the (new) plan above the deployed
    weight; a plan may change mid-rollout.
``rollout-soak-served``
    The deployed stage has soaked its minimum (under the plan it was entered
    with, or the new plan's if longer), by the clock and by the new stage's
    recorded start; with evidence, also from when Prometheus saw the canary
    take the stage's share of traffic (``trafficSince``) to the evidence's
    collection: evidence that covers less than the soak refuses.
``rollout-live-route-respected``
    When the relay's fast path took a canary out of traffic (its live route
    gives it 0 % while the deployed state gives it more), no new state may give
    it traffic: the stack file must first record the rollback (weight 0).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Mapping

from rollout.gates.names import LIVE_ROUTE_RESPECTED, NEXT_STAGE_ONLY, SOAK_SERVED
from rollout.model.durations import format_duration
from rollout.model.state import current_soak, stage_soak
from rollout.model.time import format_time, parse_time


def _next_stage_only(new: Mapping[str, Any], deployed: Mapping[str, Any] | None, deployed_weight: int):
    weights = [s["weight"] for s in new["stages"]]
    # The new plan's first stage above the deployed weight: a plan may change mid-rollout.
    expected = next((w for w in weights if w > deployed_weight), None)
    if new["weight"] != expected:
        return [(NEXT_STAGE_ONLY, f"{deployed_weight}% -> {new['weight']}% skips a stage; "
                 f"the next stage of plan {new['plan']} after {deployed_weight}% is {expected}%")]
    return []


def _soak_served(
    name: str,
    new: Mapping[str, Any],
    deployed: Mapping[str, Any] | None,
    deployed_weight: int,
    evidence: Mapping[str, Any] | None,
    now: datetime,
):
    if not deployed:
        return [(SOAK_SERVED, f"no deployed record of this service: its {deployed_weight}% stage has no known "
                 "start, so its soak cannot be shown")]
    try:
        started = parse_time(deployed["stageStartedAt"])
    except (KeyError, ValueError):
        return [(SOAK_SERVED, "the deployed state has no readable stage start")]
    soaks = [s for s in (current_soak(deployed), stage_soak(new, deployed_weight)) if s is not None]
    if not soaks:
        return [(SOAK_SERVED, f"the deployed {deployed_weight}% stage has no known soak under any plan")]
    # The longer of the deployed and the new plan's soak: a plan change in the same
    # diff cannot shorten the stage being left.
    soak = max(soaks)
    served_at = started + soak
    found = []
    if now < served_at:
        found.append((SOAK_SERVED, f"the {deployed_weight}% stage began {format_time(started)} and must soak "
                      f"{format_duration(soak)}: it may advance from {format_time(served_at)}, "
                      f"{format_duration(served_at - now)} from now"))
    else:
        try:
            entered = parse_time(new["stageStartedAt"])
        except (KeyError, ValueError):
            entered = None
        if entered is not None and entered < served_at:
            found.append((SOAK_SERVED, f"the history enters {new['weight']}% at {format_time(entered)}, before the "
                          f"{deployed_weight}% stage served its {format_duration(soak)} soak "
                          f"({format_time(served_at)})"))
    if not found and isinstance(evidence, Mapping):
        found += _soak_covered(name, deployed, deployed_weight, soak, evidence)
    return found


def _soak_covered(name: str, deployed: Mapping[str, Any], weight: int, soak: timedelta, evidence: Mapping[str, Any]):
    """With evidence: the soak counts from when Prometheus saw the stage take its traffic."""
    services = evidence.get("services")
    record = services.get(name) if isinstance(services, Mapping) else None
    if not isinstance(record, Mapping) or record.get("stageStartedAt") != deployed.get("stageStartedAt"):
        return []  # not evidence of this stage: rollout-canary-within-budget refuses it
    if "trafficSince" not in record:
        return [(SOAK_SERVED, "the evidence does not say since when the canary took its traffic (written by an "
                 "older `rollout evidence`): the soak cannot be shown; collect it again")]
    try:
        collected = parse_time(evidence.get("collectedAt"))
    except ValueError:
        return []  # rollout-canary-within-budget refuses it
    share = "its health checks" if weight == 0 else f"its {weight}% share of traffic"
    since = record.get("trafficSince")
    if since is None:
        return [(SOAK_SERVED, f"Prometheus holds no sign of the canary taking {share} in the {weight}% stage "
                 f"(since {deployed.get('stageStartedAt')}): the evidence covers 0s of its {format_duration(soak)} soak")]
    try:
        took = parse_time(since)
    except ValueError:
        return [(SOAK_SERVED, f"the evidence's trafficSince {since!r} is not a time")]
    covered = max(collected - took, timedelta(0))
    if covered < soak:
        return [(SOAK_SERVED, f"the evidence covers {format_duration(covered)} of the {weight}% stage's "
                 f"{format_duration(soak)} soak: Prometheus first saw the canary take {share} at "
                 f"{format_time(took)} (the stage was recorded at {deployed.get('stageStartedAt')}); "
                 f"the soak counts from then, {format_duration(soak - covered)} more are needed")]
    return []

def _live_route_respected(name: str, new: Mapping[str, Any], deployed_weight: int, evidence: Mapping[str, Any] | None):
    record = ((evidence or {}).get("services") or {}).get(name)
    live = record.get("liveRoute") if isinstance(record, Mapping) else None
    weight = live.get("canaryWeight") if isinstance(live, Mapping) else None
    # A number (the policy pack's config carries every number as a float), not a flag.
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or math.isnan(weight):
        return []
    if weight == 0 and deployed_weight > 0 and new["weight"] > 0:
        who = "the relay's fast path" if live.get("setByRelay") else "an edit in the cluster"
        return [
            (
                LIVE_ROUTE_RESPECTED,
                f"{who} took the canary out of traffic (live route 0 %, deployed {deployed_weight:g} %); "
                f"{new['weight']} % would give it traffic again before the history records the rollback",
            )
        ]
    return []
