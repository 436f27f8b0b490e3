"""The gates of the traffic a canary takes: the next stage only, the soak served, the live route.

``rollout-next-stage-only``
    The new weight is the next stage above the deployed weight: the nearest
    stage either the deployed or the proposed plan has there, and a stage of the
    proposed plan.
``rollout-soak-served``
    The deployed stage has soaked its minimum (the longest the deployed plan, the
    plan it was entered with or the proposed plan gives it), by the clock and by
    the new stage's recorded start; with evidence, also from when Prometheus saw
    the canary take the stage's share of traffic (``trafficSince``) to the
    evidence's collection: evidence that covers less than the soak refuses.
``rollout-live-route-respected``
    When the relay's fast path took a canary out of traffic (its live route
    gives it 0 % while the deployed state gives it more), no new state may give
    it traffic: the stack file must first record the rollback (weight 0).

A service never deployed (no deployed state at all, or a new service) is judged
by its history alone: a walk of its plan from the first stage, each stage
entered only after the one before it soaked (:func:`walk`).
"""

from __future__ import annotations

from datetime import timedelta

from rollout.gates.names import LIVE_ROUTE_RESPECTED, NEXT_STAGE_ONLY, SOAK_SERVED
from rollout.gates.ratchet import Pair, next_stage, soak_left
from rollout.model.durations import format_duration
from rollout.model.time import format_time
from rollout.model.transition import Evidence, Transition

Found = list[tuple[str, str]]


def next_stage_only(pair: Pair) -> Found:
    new, weight = pair.proposed, pair.deployed_weight
    expected = next_stage(pair)
    if new.weight != expected or expected not in new.weights:
        return [(NEXT_STAGE_ONLY, f"{weight}% -> {new.weight}% skips a stage; "
                 f"the next stage of plan {new.plan} after {weight}% is {expected}%")]
    return []


def soak_served(pair: Pair, t: Transition) -> Found:
    old, new, weight = pair.deployed, pair.proposed, pair.deployed_weight
    if old is None:
        return walk(pair, t)
    started = old.stage_started_at
    soak = soak_left(pair)
    if soak is None:
        return [(SOAK_SERVED, f"the deployed {weight}% stage has no known soak under any plan")]
    served_at = started + soak
    if t.now < served_at:
        return [(SOAK_SERVED, f"the {weight}% stage began {format_time(started)} and must soak "
                 f"{format_duration(soak)}: it may advance from {format_time(served_at)}, "
                 f"{format_duration(served_at - t.now)} from now")]
    entered = new.stage_started_at
    if entered < served_at:
        return [(SOAK_SERVED, f"the history enters {new.weight}% at {format_time(entered)}, before the "
                 f"{weight}% stage served its {format_duration(soak)} soak ({format_time(served_at)})")]
    if t.evidence is not None:
        return soak_covered(pair, soak, t.evidence)
    return []


def walk(pair: Pair, t: Transition) -> Found:
    """Never deployed: the history alone must walk the plan from its first stage, each stage soaked.

    Returns the first step that is no walk (``rollout-next-stage-only``) or that
    enters a stage before the one before it soaked (``rollout-soak-served``).
    """
    new = pair.proposed
    history = new.stage_history  # an override or a resume enters no stage
    first = new.first_weight
    if history[0].weight != first:
        return [(NEXT_STAGE_ONLY, f"never deployed: the history starts at {history[0].weight}%, not at the "
                 f"first stage of plan {new.plan} ({first}%); a rollout walks its plan from there")]
    for before, entry in zip(history, history[1:]):
        if entry.weight <= before.weight:
            continue  # a rollback within the history
        expected = new.next_weight(before.weight)
        if entry.weight != expected:
            return [(NEXT_STAGE_ONLY, f"never deployed: the history goes {before.weight}% -> {entry.weight}% at "
                     f"{format_time(entry.started_at)}, skipping a stage; the next stage of plan {new.plan} after "
                     f"{before.weight}% is {expected}%")]
        soak = new.soak_at(before.weight)
        if soak is None:
            return [(SOAK_SERVED, f"never deployed: the {before.weight}% stage has no soak in plan {new.plan}")]
        served_at = before.started_at + soak
        if entry is history[-1] and t.now < served_at:
            return [(SOAK_SERVED, f"the {before.weight}% stage began {format_time(before.started_at)} and must soak "
                     f"{format_duration(soak)}: it may advance from {format_time(served_at)}, "
                     f"{format_duration(served_at - t.now)} from now (never deployed: judged by the history alone)")]
        if entry.started_at < served_at:
            return [(SOAK_SERVED, f"never deployed: the history enters {entry.weight}% at "
                     f"{format_time(entry.started_at)}, before the {before.weight}% stage from "
                     f"{format_time(before.started_at)} served its {format_duration(soak)} soak")]
    if new.stage_started_at > t.now:
        return [(SOAK_SERVED, f"never deployed: the history enters {new.weight}% at "
                 f"{format_time(new.stage_started_at)}, after now ({format_time(t.now)})")]
    return []


def soak_covered(pair: Pair, soak: timedelta, evidence: Evidence) -> Found:
    """With evidence: the soak counts from when Prometheus saw the stage take its traffic."""
    old, weight = pair.deployed, pair.deployed_weight
    record = evidence.services.get(pair.name)
    if record is None or record.stage_started_at != old.stage_started_at:
        return []  # not evidence of this stage: rollout-canary-within-budget refuses it
    if record.traffic == "absent":
        return [(SOAK_SERVED, "the evidence does not say since when the canary took its traffic (written by an "
                 "older `rollout evidence`): the soak cannot be shown; collect it again")]
    collected = evidence.collected_at
    if collected is None:
        return []  # rollout-canary-within-budget refuses it
    share = "its health checks" if weight == 0 else f"its {weight}% share of traffic"
    stage = format_time(old.stage_started_at)
    if record.traffic == "none":
        return [(SOAK_SERVED, f"Prometheus holds no sign of the canary taking {share} in the {weight}% stage "
                 f"(since {stage}): the evidence covers 0s of its {format_duration(soak)} soak")]
    if record.traffic_since is None:
        return [(SOAK_SERVED, f"the evidence's trafficSince {record.traffic_text} is not a time")]
    took = record.traffic_since
    covered = max(collected - took, timedelta(0))
    if covered < soak:
        return [(SOAK_SERVED, f"the evidence covers {format_duration(covered)} of the {weight}% stage's "
                 f"{format_duration(soak)} soak: Prometheus first saw the canary take {share} at "
                 f"{format_time(took)} (the stage was recorded at {stage}); "
                 f"the soak counts from then, {format_duration(soak - covered)} more are needed")]
    return []


def promote_soak_covered(pair: Pair, t: Transition) -> Found:
    """A promote: with evidence, the final stage's soak is covered from when the canary took its traffic
    (without evidence, rollout-canary-within-budget refuses it; the clock is rollout-stable-completed-release-only's)."""
    soak = pair.deployed.current_soak if pair.deployed is not None else None
    if t.evidence is None or soak is None:
        return []
    return soak_covered(pair, soak, t.evidence)


def live_route_respected(pair: Pair, evidence: Evidence | None) -> Found:
    record = evidence.services.get(pair.name) if evidence is not None else None
    live = record.live_route if record is not None else None
    deployed_weight, new = pair.deployed_weight, pair.proposed
    if live is None:
        return []
    if live.canary_weight == 0 and deployed_weight > 0 and new.weight > 0:
        if live.set_by_relay:
            who = "the relay's fast path"
        elif live.writers_known:
            who = "an edit in the cluster (not the relay's field manager)"
        else:
            who = ("the live route, whose writer is not known (its managedFields were not in --live-routes: "
                   "`kubectl get httproutes -n NAMESPACE -o json --show-managed-fields` keeps them),")
        return [(LIVE_ROUTE_RESPECTED, f"{who} took the canary out of traffic (live route 0 %, deployed "
                 f"{deployed_weight:g} %); {new.weight} % would give it traffic again before the history records "
                 "the rollback")]
    return []


__all__ = ["live_route_respected", "next_stage_only", "promote_soak_covered", "soak_covered", "soak_served", "walk"]
