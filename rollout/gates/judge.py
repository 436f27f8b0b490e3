"""The rollout gates: may a stack's new rollout state replace the deployed one?

Pure functions over the JSON mappings of :mod:`rollout.model.state` and the evidence
written by ``rollout evidence`` (:mod:`rollout.ops.evidence`). The same
:func:`judge` runs in ``rollout check``, ``rollout advance --evidence`` and the
CrossGuard policy pack, so all three refuse exactly the same transitions.

Every service is judged on what changes against the deployed state. What a
rollout promotes is a **release** (the canary's image; its digest when given,
:mod:`rollout.model.releases`). Three gates judge every change:

``rollout-history-append-only``
    Every deployed history entry stays as it was (weight, start, release, plan,
    reason); only new entries follow. The first entry that differs is named.
``rollout-new-release-new-rollout``
    The canary's release changes only together with a new history entry at the
    plan's first stage (0 %): a new release starts a new rollout.
``rollout-stable-completed-release-only``
    ``stable.image`` changes only to the release whose rollout completed in this
    stack (100 % served for the plan's completion soak), or back to the stable
    image deployed before (``previousImage``, a revert).

A lower weight (a rollback) and a safety flag switched on are never refused:
a rollback is judged by no advance gate, whatever the release, the history or
the evidence, and the history gate only asks that it remove no deployed entry
(removing entries to lower the weight would restart an old stage's clock). (A diff that both rolls back and
changes the canary's or the stable track's image is judged for the image
change; the rollback alone never is.) The same weight is no advance and needs
no evidence. An advance (the weight goes UP) must pass every gate:

``rollout-next-stage-only``
    The new weight is the first stage of the (new) plan above the deployed
    weight; a plan may change mid-rollout.
``rollout-soak-served``
    The deployed stage has soaked its minimum (under the plan it was entered
    with, or the new plan's if longer), by the clock and by the new stage's
    recorded start; with evidence, also from when Prometheus saw the canary
    take the stage's share of traffic (``trafficSince``) to the evidence's
    collection: evidence that covers less than the soak refuses.
``rollout-canary-within-budget``
    Fresh evidence for this stack shows the canary within budget over the
    deployed stage: fewer consecutive failed health checks than the maximum, at
    least ``minRequests`` requests, and its error ratio and its shares of
    requests slower than the P95 and P99 limits judged **pass** with confidence,
    against the budget and against the stable track over the same window
    (:mod:`rollout.gates.confidence`). A measure judged **fail** refuses; one
    judged **inconclusive** (the data cannot tell yet) refuses too, saying so:
    the stage holds and keeps soaking. Missing, stale or unreadable evidence and
    every query that did not return a number (no data, NaN, error, Prometheus
    unreachable) refuse: no data is never a pass.
``rollout-staging-first``
    A stack with ``promotesFrom`` enters stage w of release R only after the
    upstream stack completed stage w with R: the upstream's canary runs R and
    is past w, or at w with its soak served; or the upstream promoted R to its
    stable track (which it may only after completing R).
``rollout-no-safety-flag-on-advance``
    No safety flag is on in the new state.

One more gate is judged on every change, advance or not, with evidence that
read the live routes (``rollout evidence --live-routes``):

``rollout-live-route-respected``
    When the relay's fast path took a canary out of traffic (its live route
    gives it 0 % while the deployed state gives it more), no new state may give
    it traffic: the stack file must first record the rollback (weight 0).

The evidence the gates read is described in :mod:`rollout.model.evidence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from rollout.model.config import CLOCK_SKEW
from rollout.model.durations import format_duration
from rollout.gates.confidence import INCONCLUSIVE, VERDICT_WORDS, confidence_thresholds, judge_traffic
from rollout.model.evidence import MEASURES, QUERY_STATUSES, STABLE_MEASURES, TRAFFIC_MEASURES
from rollout.model.releases import same_release
from rollout.model.state import current_soak, stage_soak
from rollout.model.time import format_time, parse_time


@dataclass(frozen=True)
class GatePolicy:
    """A gate as the policy pack presents it: name, description, remediation."""

    name: str
    description: str
    remediation: str


HISTORY_APPEND_ONLY = "rollout-history-append-only"
NEW_RELEASE_NEW_ROLLOUT = "rollout-new-release-new-rollout"
STABLE_COMPLETED_ONLY = "rollout-stable-completed-release-only"
NEXT_STAGE_ONLY = "rollout-next-stage-only"
SOAK_SERVED = "rollout-soak-served"
CANARY_WITHIN_BUDGET = "rollout-canary-within-budget"
STAGING_FIRST = "rollout-staging-first"
NO_SAFETY_FLAG_ON_ADVANCE = "rollout-no-safety-flag-on-advance"
LIVE_ROUTE_RESPECTED = "rollout-live-route-respected"

#: Every gate by name, in the order they are judged. All are mandatory.
GATE_POLICIES: dict[str, GatePolicy] = {
    policy.name: policy
    for policy in (
        GatePolicy(
            HISTORY_APPEND_ONLY,
            "Every deployed history entry stays as it was (weight, start, release, plan, reason); "
            "only new entries may follow it.",
            "Restore the deployed entries and append new ones with `rollout advance`, `rollout release` "
            "or `rollout rollback`.",
        ),
        GatePolicy(
            NEW_RELEASE_NEW_ROLLOUT,
            "The canary's release changes only with a new history entry at the plan's first stage (0%): "
            "a new release starts a new rollout.",
            "Start the release with `rollout release --image IMAGE`, which sets the canary's image and "
            "appends weight 0.",
        ),
        GatePolicy(
            STABLE_COMPLETED_ONLY,
            "The stable track's image changes only to the release whose rollout completed in this stack, "
            "or back to the stable image deployed before (a revert).",
            "Promote a completed rollout with `rollout promote`; to revert, set stable.image to "
            "stable.previousImage.",
        ),
        GatePolicy(
            NEXT_STAGE_ONLY,
            "A rollout advance goes to the plan's first stage above the deployed weight, and no other.",
            "Advance one stage at a time with `rollout advance`; a lower weight (rollback) is always allowed.",
        ),
        GatePolicy(
            SOAK_SERVED,
            "The deployed stage has soaked at least its minimum before the next stage begins.",
            "Wait until `rollout status` shows the earliest advance time, then run `rollout advance` again.",
        ),
        GatePolicy(
            CANARY_WITHIN_BUDGET,
            "Fresh gate evidence shows, with confidence, the canary within its budget and no worse than the "
            "stable track beyond the tolerance over the deployed stage (error ratio, shares slower than the "
            "P95 and P99 limits), its health checks passing and at least the minimum requests.",
            "Collect evidence with `rollout evidence` and pass it with --evidence; on a fail, fix the canary or "
            "roll back with `rollout rollback`; on an inconclusive verdict, let the stage soak and collect again.",
        ),
        GatePolicy(
            STAGING_FIRST,
            "A stack with promotesFrom enters a stage of a release only after the upstream stack "
            "completed that stage with the same release.",
            "Release the same image in the upstream stack (promotesFrom), advance it to this stage and "
            "let it soak first.",
        ),
        GatePolicy(
            NO_SAFETY_FLAG_ON_ADVANCE,
            "No safety flag (emergency_shutdown, read_only_mode, maintenance_mode) is on during an advance.",
            "Switch the safety flag off in a change of its own before advancing the rollout.",
        ),
        GatePolicy(
            LIVE_ROUTE_RESPECTED,
            "A canary the relay took out of traffic in the cluster (live route weight 0) gets no traffic "
            "again before the history records its rollback.",
            "Record the rollback with `rollout rollback` (the Rollback workflow does) and deploy that first.",
        ),
    )
}

@dataclass(frozen=True)
class GateViolation:
    """A refused advance: which gate, which service, and why (one sentence)."""

    policy: str
    service: str
    message: str


def judge(
    new_state: Mapping[str, Any],
    deployed_state: Mapping[str, Any] | None,
    evidence: Mapping[str, Any] | None,
    upstream_state: Mapping[str, Any] | None,
    now: datetime,
) -> list[GateViolation]:
    """Judge every service of ``new_state`` against the deployed state.

    ``deployed_state`` is the state running now (from the evidence, the stack's
    outputs or the stack file at a git base); None, or a service missing from
    it, counts as "never deployed": weight 0 with no known stage start, so an
    advance above 0 is refused until a deployed 0 % stage has soaked.
    ``evidence`` is ``rollout evidence``'s JSON (None: no evidence);
    ``upstream_state`` is the state of ``new_state["promotesFrom"]``. Returns
    the violations in service order, then gate order; empty means allowed.
    """
    violations: list[GateViolation] = []
    unreadable = None
    deployed_services: Mapping[str, Any] = {}
    if deployed_state is not None:
        if isinstance(deployed_state, Mapping) and isinstance(deployed_state.get("services"), Mapping):
            deployed_services = deployed_state["services"]
        else:
            unreadable = "the deployed state is not a rollout state"
    for name in sorted(new_state.get("services") or {}):
        new = new_state["services"][name]
        deployed = deployed_services.get(name)
        why = unreadable or (deployed is not None and _stored(unreadable_service(deployed)))
        if why:
            # Nothing is known about what runs; only 0 % is surely not an advance.
            if new["weight"] > 0:
                violations.append(GateViolation(NEXT_STAGE_ONLY, name, f"{why}: an advance cannot be judged"))
            continue
        deployed_weight = deployed["weight"] if deployed else 0
        found: list[tuple[str, str]] = []
        # Judged on every change: what the canary and the stable track run.
        found += _new_release_new_rollout(new, deployed)
        found += _stable_completed_only(new, deployed, now)
        if new["weight"] >= deployed_weight:
            found += _history_append_only(new, deployed)
        else:
            # A rollback is never refused for what the history says, as long as it
            # is a new entry: removing deployed entries is no rollback.
            found += _rollback_appended(new, deployed)
        if new["weight"] > deployed_weight:
            found += _next_stage_only(new, deployed, deployed_weight)
            found += _soak_served(name, new, deployed, deployed_weight, evidence, now)
            found += _canary_within_budget(name, new_state, deployed_state, deployed, evidence, now)
            found += _staging_first(name, new_state, upstream_state, now)
            found += _no_safety_flag(new_state)
        found += _live_route_respected(name, new, deployed_weight, evidence)
        order = list(GATE_POLICIES)
        for policy, message in sorted(found, key=lambda item: order.index(item[0])):
            violations.append(GateViolation(policy, name, message))
    return violations


def judge_with_evidence(
    new_state: Mapping[str, Any],
    evidence: Mapping[str, Any] | None,
    now: datetime,
    deployed_state: Mapping[str, Any] | None = None,
    upstream_state: Mapping[str, Any] | None = None,
) -> list[GateViolation]:
    """:func:`judge`, taking the deployed and upstream states from the evidence when present.

    With evidence, "deployed" is the evidence's ``deployedState`` (its absence is
    then "never deployed") and the upstream is its ``upstreamState``; the
    arguments are the fallback used when there is no evidence (the policy pack
    and ``rollout check`` pass the stack file at the git base).
    """
    if evidence is not None:
        deployed_state = evidence.get("deployedState")
        upstream_state = evidence.get("upstreamState") or upstream_state
    return judge(new_state, deployed_state, evidence, upstream_state, now)


def advancing_services(new_state: Mapping[str, Any], deployed_state: Mapping[str, Any] | None) -> list[str]:
    """Services whose weight goes up from the deployed state (the ones the gates judge).

    As in :func:`judge`, a deployed state or service record that cannot be read
    leaves nothing known about what runs: every service above 0 % counts.
    """
    deployed = deployed_state.get("services") if isinstance(deployed_state, Mapping) else None
    readable = deployed_state is None or isinstance(deployed, Mapping)

    def deployed_weight(name: str) -> int:
        record = (deployed or {}).get(name)
        if record is None:
            return 0
        return 0 if unreadable_service(record) else record["weight"]

    return [
        name
        for name, service in sorted((new_state.get("services") or {}).items())
        if service["weight"] > (deployed_weight(name) if readable else 0)
    ]


def _stored(why: str | None) -> str | None:
    return why and f"the stored state of the service {why}"


def unreadable_service(service: Any) -> str | None:
    """Why a stored service state (deployed or upstream) cannot be judged, as a predicate
    ("has no weight"); None when it can."""
    if not isinstance(service, Mapping):
        return "is not an object"
    weight = service.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int):
        return "has no weight"
    try:
        parse_time(service.get("stageStartedAt"))
    except ValueError:
        return "has no readable stageStartedAt"
    stages = service.get("stages")
    if not isinstance(stages, list) or not all(
        isinstance(stage, Mapping) and isinstance(stage.get("weight"), int) and isinstance(stage.get("soakSeconds"), int)
        for stage in stages
    ):
        return "has no readable stages"
    return None


# --- the gates --------------------------------------------------------------------


def _history_append_only(new: Mapping[str, Any], deployed: Mapping[str, Any] | None):
    if not deployed:
        return []
    history = new.get("history") or []
    for index, before in enumerate(deployed["history"]):
        shown = f"history[{index}]"
        if not isinstance(before, Mapping):
            return [(HISTORY_APPEND_ONLY, f"{shown}: the deployed entry is unreadable")]
        was = f"{before.get('weight')}% from {before.get('startedAt')}"
        if index >= len(history):
            return [(HISTORY_APPEND_ONLY, f"{shown} (the deployed {was}) is missing: the history is append-only; "
                     "deployed entries are never removed")]
        entry = history[index]
        # Keys an older deployed state does not record are not compared.
        keys = [k for k in ("weight", "startedAt", "release", "plan", "reason") if k in before]
        changed = [k for k in keys if entry.get(k) != before.get(k)]
        if changed:
            what = "; ".join(f"{k} {_text(entry.get(k))}, deployed {_text(before.get(k))}" for k in changed)
            return [(HISTORY_APPEND_ONLY, f"{shown} differs from the deployed entry ({was}): {what}; "
                     "the history is append-only: deployed entries never change")]
    return []


def _rollback_appended(new: Mapping[str, Any], deployed: Mapping[str, Any] | None):
    if not deployed:
        return []
    deployed_history, history = deployed.get("history") or [], new.get("history") or []
    if len(history) >= len(deployed_history):
        return []
    return _history_append_only(new, deployed) or [(HISTORY_APPEND_ONLY, f"the history goes from {deployed['weight']}% to {new['weight']}% by removing "
             f"deployed entries ({len(deployed_history)} deployed, {len(history)} now); a rollback appends an "
             "entry (`rollout rollback`)")]


def _text(value: Any) -> str:
    return "unset" if value is None else str(value)


def _new_release_new_rollout(new: Mapping[str, Any], deployed: Mapping[str, Any] | None):
    if not deployed:
        return []
    before = (deployed.get("canary") or {}).get("image")
    after = (new.get("canary") or {}).get("image")
    if before is None or after is None or same_release(before, after):
        return []
    history = new.get("history") or []
    first = new["stages"][0]["weight"] if new.get("stages") else 0
    starts = len(history) > len(deployed.get("history") or []) and new["weight"] == first
    if starts:
        return []
    return [(NEW_RELEASE_NEW_ROLLOUT, f"the canary's image changes from {before} to {after} at {new['weight']}%: "
             f"a new release starts a new rollout with a new {first}% history entry "
             f"(`rollout release --image {after}`)")]


def _deployed_complete(deployed: Mapping[str, Any], now: datetime) -> tuple[bool, str]:
    """Whether the deployed rollout completed (100 % for its final soak) at ``now``, and how it stands."""
    weight = deployed["weight"]
    if weight != 100:
        return False, f"at {weight}%"
    soak = current_soak(deployed)
    started = parse_time(deployed["stageStartedAt"])
    if soak is None:
        return False, "at 100% off its plan"
    if now < started + soak:
        return False, f"at 100% since {format_time(started)}, complete from {format_time(started + soak)}"
    return True, f"complete since {format_time(started + soak)}"


def _stable_completed_only(new: Mapping[str, Any], deployed: Mapping[str, Any] | None, now: datetime):
    if not deployed or not isinstance(deployed.get("stable"), Mapping):
        return []
    was, now_stable = deployed["stable"], new.get("stable") or {}
    before, after = was.get("image"), now_stable.get("image")
    previous = was.get("previousImage")
    if before is None or after is None:
        return []
    if same_release(before, after):
        if "previousImage" in was and now_stable.get("previousImage") != previous:
            return [(STABLE_COMPLETED_ONLY, f"stable.previousImage changes from {_text(previous)} to "
                     f"{_text(now_stable.get('previousImage'))} while stable.image stays {after}: only a promote "
                     "or a revert changes it")]
        return []
    canary = (deployed.get("canary") or {}).get("image")
    complete, standing = _deployed_complete(deployed, now)
    found = []
    if same_release(after, canary) and complete:
        pass  # the release that completed here
    elif previous is not None and same_release(after, previous):
        pass  # a revert to the stable image deployed before
    else:
        if same_release(after, canary):
            why = f"its rollout here has not completed ({standing})"
        else:
            why = (f"no rollout of it completed here (the canary runs {_text(canary)}, {standing}) and it is not "
                   f"the previous stable image ({_text(previous)})")
        found.append((STABLE_COMPLETED_ONLY, f"stable.image changes from {before} to {after}, but {why}: "
                      "stable changes only to a completed release (`rollout promote`) or back (a revert)"))
    kept = now_stable.get("previousImage")
    if "previousImage" in was and kept not in (before, previous):
        found.append((STABLE_COMPLETED_ONLY, f"stable.previousImage is {_text(kept)}; with stable.image changing "
                      f"from {before} it must be {before} (the image replaced)"))
    return found


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


def _thresholds(new_state: Mapping[str, Any], deployed_state: Mapping[str, Any] | None) -> dict[str, float]:
    """The stricter of the new and the deployed thresholds: loosening them in the
    same diff as an advance does not loosen the gate for that advance."""
    new = new_state.get("canary") or {}
    old = (deployed_state or {}).get("canary") or {}

    def pick(key: str, stricter) -> Any:
        values = [v for v in (new.get(key), old.get(key)) if isinstance(v, (int, float))]
        return stricter(values) if values else None

    return {
        "maxErrorRatio": pick("maxErrorRatio", min),
        "maxLatencyP95Seconds": pick("maxLatencyP95Seconds", min),
        "maxLatencyP99Seconds": pick("maxLatencyP99Seconds", min),
        "maxConsecutiveFailedHealthChecks": pick("maxConsecutiveFailedHealthChecks", min),
        "minRequests": pick("minRequests", max),
        "evidenceMaxAgeSeconds": pick("evidenceMaxAgeSeconds", min),
        **confidence_thresholds(new, old),
    }


def _canary_within_budget(
    name: str,
    new_state: Mapping[str, Any],
    deployed_state: Mapping[str, Any] | None,
    deployed: Mapping[str, Any] | None,
    evidence: Mapping[str, Any] | None,
    now: datetime,
):
    gate = CANARY_WITHIN_BUDGET
    if evidence is None:
        return [(gate, "no gate evidence: an advance must show the canary's SLIs over the deployed stage "
                 "(run `rollout evidence` and pass its file with --evidence)")]
    if not isinstance(evidence, Mapping):
        return [(gate, "the gate evidence is not a JSON object")]
    limits = _thresholds(new_state, deployed_state)
    stack = new_state.get("stack")
    if evidence.get("stack") != stack:
        return [(gate, f"the evidence is for stack {evidence.get('stack')!r}, not {stack!r}")]
    try:
        collected = parse_time(evidence.get("collectedAt"))
    except ValueError:
        return [(gate, "the evidence has no readable collectedAt time")]
    max_age = timedelta(seconds=limits["evidenceMaxAgeSeconds"] or 0)
    if collected > now + CLOCK_SKEW:
        return [(gate, f"the evidence was collected at {format_time(collected)}, in the future")]
    if now - collected > max_age:
        return [(gate, f"the evidence is stale: collected {format_time(collected)}, "
                 f"{format_duration(now - collected)} ago; evidenceMaxAge is {format_duration(max_age)}")]
    services = evidence.get("services")
    record = services.get(name) if isinstance(services, Mapping) else None
    if not isinstance(record, Mapping):
        return [(gate, "the evidence has no record of this service")]
    if deployed is not None and (
        record.get("stageWeight") != deployed.get("weight")
        or record.get("stageStartedAt") != deployed.get("stageStartedAt")
    ):
        return [(gate, f"the evidence covers the {record.get('stageWeight')}% stage from "
                 f"{record.get('stageStartedAt')}, not the deployed {deployed.get('weight')}% stage from "
                 f"{deployed.get('stageStartedAt')}")]
    deployed_release = (deployed or {}).get("release")
    if "release" in record and deployed_release is not None and not same_release(record.get("release"), deployed_release):
        return [(gate, f"the evidence covers release {record.get('release')}, not the deployed {deployed_release}")]
    queries = record.get("queries") if isinstance(record.get("queries"), Mapping) else {}
    deployed_weight = deployed.get("weight") if deployed else 0
    required = [m for m in MEASURES if (deployed_weight > 0 or m not in TRAFFIC_MEASURES) and m not in STABLE_MEASURES]
    found = []
    values: dict[str, float] = {}
    for measure in required:
        result = queries.get(measure)
        value = _value_of(result)
        if value is None:
            found.append((gate, f"{MEASURES[measure]}: {_why_no_value(result)}; no data is never a pass: "
                          f"{VERDICT_WORDS[INCONCLUSIVE]}"))
        else:
            values[measure] = value
    # The stable track is the baseline: without it only the comparison is out of reach.
    values.update({m: v for m in STABLE_MEASURES if (v := _value_of(queries.get(m))) is not None})
    checks = (
        ("consecutiveFailedHealthChecks", "maxConsecutiveFailedHealthChecks", lambda v, t: v < t,
         "not fewer than the maximum of"),
        ("requests", "minRequests", lambda v, t: v >= t, "below the minimum of"),
    )
    for measure, limit_key, within, words in checks:
        if measure not in values:
            continue
        limit = limits[limit_key]
        if limit is None:
            found.append((gate, f"the state has no {limit_key} threshold to judge {MEASURES[measure]} by"))
        elif not within(values[measure], limit):
            held = f": too few to judge; {VERDICT_WORDS[INCONCLUSIVE]}" if measure == "requests" else ""
            found.append((gate, f"{MEASURES[measure]} over the {deployed_weight}% stage is "
                          f"{_show(values[measure])}, {words} {_show(limit)}{held}"))
    enough = limits["minRequests"] is not None and values.get("requests", 0) >= limits["minRequests"]
    if deployed_weight > 0 and enough and all(m in values for m in required):
        found += [(gate, message) for message in judge_traffic(values, queries, limits)]
    return found


def _value_of(result: Any) -> float | None:
    if not isinstance(result, Mapping) or result.get("status") != "ok":
        return None
    value = result.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _why_no_value(result: Any) -> str:
    if not isinstance(result, Mapping):
        return "not in the evidence"
    status = result.get("status")
    why = QUERY_STATUSES.get(status, f"status {status!r}") if status != "ok" else "no finite value"
    detail = result.get("detail")
    return f"{why} ({detail})" if detail else why


def _show(value: float) -> str:
    return f"{value:.6g}"


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
