"""Releases and the gates that key on them: a table of transitions, judged by the gate
functions and by the policy pack served over gRPC as Pulumi serves it.

Every state is built here from an explicit history and explicit images, with
times relative to the clock of the run (the served pack judges at its own
``now``), so nothing depends on the shipped stacks' weights or dates; only the
staging and production thresholds and tiers come from their stack files.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2

from policies import rules
from rollout.gates.judge import (
    CANARY_WITHIN_BUDGET,
    FLEET_HALT,
    FLEET_LIMIT,
    FREEZE_WINDOW,
    RELEASE_GROUP_IN_STEP,
    HISTORY_APPEND_ONLY,
    LIVE_ROUTE_RESPECTED,
    NEW_RELEASE_NEW_ROLLOUT,
    NEXT_STAGE_ONLY,
    NO_SAFETY_FLAG_ON_ADVANCE,
    SOAK_SERVED,
    STABLE_COMPLETED_ONLY,
    STAGING_FIRST,
    NO_LOOSENING_ON_ADVANCE,
    STACK_FILES_ONLY,
    judge,
)
from rollout.model.stored import transition_from_json
from rollout.load.stack import load_stack
from stackfiles import FIXTURE
from rollout.model.plans import BUILTIN_PLANS
from rollout.model.releases import canary_replicas, release_of
from rollout.model.state import rollout_state, service_state
from rollout.model.time import format_time, utc_now
from conftest import FIXTURE
from evidence_counts import counts, with_bounds
from test_policy_pack import GATES, RESOURCE_POLICIES, pack  # noqa: F401 - the served pack fixture

NOW = utc_now()
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
SERVICE = "genesis"
OLD, R, NEW, UNTESTED = (f"ghcr.io/example/genesis:{v}" for v in ("1.4.2", "1.5.0", "1.6.0", "9.9.9"))
BASES = {stack: rollout_state(load_stack(stack, FIXTURE), stack, NOW) for stack in ("staging", "production")}


def stages(plan: str) -> list[dict]:
    return [{"weight": s.weight, "soakSeconds": int(s.soak.total_seconds())} for s in BUILTIN_PLANS[plan].stages]


def state(stack="staging", history=((0, 3 * DAY),), canary=R, stable=OLD, previous=None, plan="safe",
          flags_on=(), releases=None) -> dict:
    """A state of ``stack`` with this history: (weight, how long ago it began) pairs."""
    base = copy.deepcopy(BASES[stack])
    entries = [{"weight": w, "startedAt": format_time(NOW - ago), "release": (releases or {}).get(i, canary),
                "plan": plan, "reason": None} for i, (w, ago) in enumerate(history)]
    tracks = {"canary": {"image": canary, "minReplicas": 1},
              "stable": {"image": stable, "replicas": 2, "previousImage": previous}}
    base["services"] = {SERVICE: service_state(SERVICE, plan, stages(plan), entries, NOW, tracks)}
    base["safetyFlagsOn"] = sorted(flags_on)
    return base


def then(deployed: dict, weight: int | None = None, ago=timedelta(0), *, canary=None, stable=None, previous="same",
         plan=None, reason=None, flags_on=None, history=None) -> dict:
    """``deployed`` changed: one entry appended at ``weight`` (None: no entry), other fields replaced."""
    service = deployed["services"][SERVICE]
    entries = copy.deepcopy(history if history is not None else service["history"])
    canary = canary or service["canary"]["image"]
    plan = plan or service["plan"]
    if weight is not None:
        entries.append({"weight": weight, "startedAt": format_time(NOW - ago), "release": canary, "plan": plan,
                        "reason": reason})
    tracks = {"canary": {"image": canary, "minReplicas": 1},
              "stable": {"image": stable or service["stable"]["image"], "replicas": 2,
                         "previousImage": service["stable"]["previousImage"] if previous == "same" else previous}}
    new = copy.deepcopy(deployed)
    new["services"] = {SERVICE: service_state(SERVICE, plan, stages(plan), entries, NOW, tracks)}
    if flags_on is not None:
        new["safetyFlagsOn"] = sorted(flags_on)
    return new


HEALTHY = {"errorRatio": 0.002, "latencyP95Seconds": 0.21, "latencyP99Seconds": 0.48,
           "consecutiveFailedHealthChecks": 1, "requests": 12_000, **counts(12_000)}


def evidence(deployed: dict, upstream: dict | None = None, traffic_since="stage", collected_ago=2 * 60, **measures):
    """Gate evidence over the deployed stage: healthy unless told otherwise."""
    service = deployed["services"][SERVICE]
    since = service["stageStartedAt"] if traffic_since == "stage" else traffic_since
    queries = {m: with_bounds(m, {"status": v, "value": None} if isinstance(v, str) else {"status": "ok", "value": v})
               for m, v in {**HEALTHY, **measures}.items()}
    return {
        "kind": "rollout-gate-evidence", "version": 1, "stack": deployed["stack"],
        "collectedAt": format_time(NOW - timedelta(seconds=collected_ago)),
        "deployedState": deployed, "upstreamState": upstream,
        "services": {SERVICE: {"stageWeight": service["weight"], "stageStartedAt": service["stageStartedAt"],
                               "release": service["release"], "trafficSince": since, "windowSeconds": 3600,
                               "queries": queries}},
    }


def live(proof: dict, canary_weight: int) -> dict:
    """``proof`` with the live route read (rollout evidence --live-routes), as the relay left it."""
    proof["services"][SERVICE]["liveRoute"] = {"canaryWeight": canary_weight, "setByRelay": True}
    return proof


# --- the deployed states ------------------------------------------------------------

AT_0 = state(history=((0, 2 * DAY),))
AT_5 = state(history=((0, 3 * DAY), (5, DAY + 12 * HOUR)))
AT_5_FRESH = state(history=((0, 3 * DAY), (5, HOUR)))
AT_10 = state(history=((0, 4 * DAY), (5, 3 * DAY), (10, DAY + 2 * HOUR)))
AT_50 = state(history=((0, 6 * DAY), (5, 5 * DAY), (10, 4 * DAY), (25, 3 * DAY), (50, 2 * DAY)))
AT_100_DONE = state(history=((0, 9 * DAY), (5, 8 * DAY), (10, 7 * DAY), (25, 6 * DAY), (50, 5 * DAY), (75, 4 * DAY),
                             (100, 3 * DAY)))
AT_100_FRESH = state(history=((0, 8 * DAY), (5, 7 * DAY), (10, 6 * DAY), (25, 5 * DAY), (50, 4 * DAY), (75, 3 * DAY),
                              (100, DAY)))
PROMOTED = then(AT_100_DONE, 0, canary=R, stable=R, previous=OLD)
FAST_AT_5 = state(history=((0, 2 * DAY), (5, 11 * HOUR)), plan="fast")
# Production at 0 with release R or an image staging never ran; staging in several states.
PROD_0 = state("production", history=((0, 2 * DAY),))
PROD_0_UNTESTED = state("production", history=((0, 2 * DAY),), canary=UNTESTED)
STAGING_R_AT_10 = AT_10
STAGING_R_AT_5_FRESH = AT_5_FRESH
STAGING_UNTESTED_AT_10 = state(history=((0, 4 * DAY), (5, 3 * DAY), (10, DAY)), canary=UNTESTED)


def backdated(deployed: dict, index: int, by: timedelta) -> dict:
    new = copy.deepcopy(deployed)
    history = new["services"][SERVICE]["history"]
    history[index]["startedAt"] = format_time(NOW - (NOW - _parse(history[index]["startedAt"])) - by)
    return then(deployed, None, history=history)


def _parse(text):
    from rollout.model.time import parse_time

    return parse_time(text)


Row = tuple  # (new, deployed, evidence, upstream, expected gates)
TABLE = {
    # rollout-history-append-only, both ways
    "an advance appended to the deployed history passes": (then(AT_10, 25), AT_10, evidence(AT_10), None, set()),
    "a deployed entry backdated 23 h is refused": (backdated(AT_10, 2, 23 * HOUR), AT_10, None, None,
                                                    {HISTORY_APPEND_ONLY}),
    "a backdated entry with an advance is refused": (then(backdated(AT_10, 2, 23 * HOUR), 25), AT_10, evidence(AT_10),
                                                     None, {HISTORY_APPEND_ONLY}),
    "a deployed entry removed is refused": (then(AT_10, None, history=AT_10["services"][SERVICE]["history"][:2]), AT_10,
                                            None, None, {HISTORY_APPEND_ONLY}),
    "deployed entries reordered are refused": (
        then(AT_10, None, history=[AT_10["services"][SERVICE]["history"][i] for i in (1, 0, 2)]), AT_10, None, None,
        {HISTORY_APPEND_ONLY}),
    # rollout-new-release-new-rollout, both ways
    "a new canary image at 10% is refused": (then(AT_10, None, canary=NEW), AT_10, None, None, {NEW_RELEASE_NEW_ROLLOUT}),
    "a new canary image with an advance is refused": (then(AT_10, 25, canary=NEW), AT_10, evidence(AT_10), None,
                                                      {NEW_RELEASE_NEW_ROLLOUT}),
    "a new canary image going to 5% is refused": (then(AT_10, 5, canary=NEW), AT_10, None, None,
                                                  {NEW_RELEASE_NEW_ROLLOUT}),
    "a new canary image at 0% without a new entry is refused": (then(AT_0, None, canary=NEW), AT_0, None, None,
                                                                {NEW_RELEASE_NEW_ROLLOUT}),
    "a release (new image, history to 0) passes": (then(AT_10, 0, canary=NEW), AT_10, None, None, set()),
    "a release from 0 passes": (then(AT_0, 0, canary=NEW), AT_0, None, None, set()),
    "the same release by digest under another name passes": (
        then(state(canary="ghcr.io/example/genesis:1.5.0@sha256:" + "a" * 64), None,
             canary="mirror.example/genesis@sha256:" + "a" * 64),
        state(canary="ghcr.io/example/genesis:1.5.0@sha256:" + "a" * 64), None, None, set()),
    # rollout-stable-completed-release-only, both ways
    "stable edited to an untested image is refused": (then(AT_10, None, stable=UNTESTED), AT_10, None, None,
                                                      {STABLE_COMPLETED_ONLY}),
    # A promote is judged like an advance out of the final stage: on evidence over it.
    "stable to the canary's release before completion is refused": (then(AT_100_FRESH, 0, stable=R, previous=OLD),
                                                                    AT_100_FRESH, None, None,
                                                                    {STABLE_COMPLETED_ONLY, CANARY_WITHIN_BUDGET}),
    "stable to the canary's release at 50% is refused": (then(AT_50, 0, stable=R, previous=OLD), AT_50, None, None,
                                                         {STABLE_COMPLETED_ONLY}),
    "a promote after completion passes on evidence over the final stage": (PROMOTED, AT_100_DONE,
                                                                           evidence(AT_100_DONE), None, set()),
    "a promote without evidence is refused": (PROMOTED, AT_100_DONE, None, None, {CANARY_WITHIN_BUDGET}),
    "a promote of a canary over budget is refused": (PROMOTED, AT_100_DONE, evidence(AT_100_DONE, errorRatio=0.2, **counts(12_000, errors=0.2)),
                                                     None, {CANARY_WITHIN_BUDGET}),
    "a promote whose final soak the evidence does not cover is refused": (
        PROMOTED, AT_100_DONE, evidence(AT_100_DONE, traffic_since=format_time(NOW - DAY)), None, {SOAK_SERVED}),
    "a revert to the previous stable image passes": (then(PROMOTED, None, stable=OLD, previous=R), PROMOTED, None,
                                                     None, set()),
    "a forged previousImage is refused": (then(AT_10, None, previous=UNTESTED), AT_10, None, None,
                                          {STABLE_COMPLETED_ONLY}),
    # rollout-next-stage-only, both ways, and a plan changed mid-rollout
    "5 -> 25 skips a stage": (then(AT_5, 25), AT_5, evidence(AT_5), None, {NEXT_STAGE_ONLY}),
    "5 -> 10 passes": (then(AT_5, 10), AT_5, evidence(AT_5), None, set()),
    # A plan changed in the same change as an advance loosens the plan: the stricter one judges, and refuses.
    "fast -> instant at 5% going on to 100% is refused": (then(FAST_AT_5, 100, plan="instant"), FAST_AT_5,
                                                         evidence(FAST_AT_5), None,
                                                         {NEXT_STAGE_ONLY, NO_LOOSENING_ON_ADVANCE}),
    "fast -> instant at 5% may not go to 10%": (then(FAST_AT_5, 10, plan="instant"), FAST_AT_5, evidence(FAST_AT_5),
                                                None, {NEXT_STAGE_ONLY, NO_LOOSENING_ON_ADVANCE}),
    "fast -> instant at 5% in a change of its own passes": (then(FAST_AT_5, None, plan="instant"), FAST_AT_5, None,
                                                            None, set()),
    "fast -> safe at 5% with an advance is judged by safe's day": (then(FAST_AT_5, 10, plan="safe"), FAST_AT_5,
                                                                  evidence(FAST_AT_5), None, {SOAK_SERVED}),
    # rollout-soak-served, both ways, by the clock and from when the stage took traffic
    "an unserved soak is refused": (then(AT_5_FRESH, 10), AT_5_FRESH, evidence(AT_5_FRESH), None, {SOAK_SERVED}),
    "evidence covering 5 minutes of a 1-day stage is refused": (
        then(AT_5, 10), AT_5, evidence(AT_5, traffic_since=format_time(NOW - timedelta(minutes=7))), None, {SOAK_SERVED}),
    "evidence of a stage that never took traffic is refused": (then(AT_5, 10), AT_5, evidence(AT_5, traffic_since=None),
                                                               None, {SOAK_SERVED}),
    "evidence covering the whole soak passes": (
        then(AT_5, 10), AT_5, evidence(AT_5, traffic_since=format_time(NOW - DAY - HOUR)), None, set()),
    # rollout-canary-within-budget, both ways
    "a canary over budget is refused": (then(AT_5, 10), AT_5, evidence(AT_5, errorRatio=0.05, errors=600), None,
                                        {CANARY_WITHIN_BUDGET}),
    "an advance without evidence is refused": (then(AT_5, 10), AT_5, None, None, {CANARY_WITHIN_BUDGET}),
    # rollout-staging-first keyed on the release, both ways
    "production to 5% with an image staging never ran is refused": (
        then(PROD_0_UNTESTED, 5), PROD_0_UNTESTED, evidence(PROD_0_UNTESTED, STAGING_R_AT_10), STAGING_R_AT_10,
        {STAGING_FIRST}),
    "production to 5% with the release staging completed 5% with passes": (
        then(PROD_0, 5), PROD_0, evidence(PROD_0, STAGING_R_AT_10), STAGING_R_AT_10, set()),
    "production to 5% while staging's 5% with the release is fresh is refused": (
        then(PROD_0, 5), PROD_0, evidence(PROD_0, STAGING_R_AT_5_FRESH), STAGING_R_AT_5_FRESH, {STAGING_FIRST}),
    "production to 5% with the release staging promoted passes": (
        then(PROD_0, 5), PROD_0, evidence(PROD_0, PROMOTED), PROMOTED, set()),
    "production to 5% of 9.9.9 when staging runs 9.9.9 at 10% passes": (
        then(PROD_0_UNTESTED, 5), PROD_0_UNTESTED, evidence(PROD_0_UNTESTED, STAGING_UNTESTED_AT_10),
        STAGING_UNTESTED_AT_10, set()),
    # rollout-no-safety-flag-on-advance, both ways
    "an advance with a safety flag on is refused": (then(AT_5, 10, flags_on=["maintenance_mode"]), AT_5, evidence(AT_5),
                                                    None, {NO_SAFETY_FLAG_ON_ADVANCE}),
    "switching a safety flag on passes": (then(AT_5_FRESH, None, flags_on=["emergency_shutdown"]), AT_5_FRESH, None,
                                          None, set()),
    # rollout-live-route-respected (the relay's fast path took the canary out), both ways
    "the unchanged 5% after the fast path set the live route to 0% is refused": (
        then(AT_5, None), AT_5, live(evidence(AT_5), 0), None, {LIVE_ROUTE_RESPECTED}),
    "recording the rollback after the fast path passes": (then(AT_5, 0, reason="CanaryErrorRateCritical"), AT_5,
                                                          live(evidence(AT_5), 0), None, set()),
}

# Rollback from every state: any release, any history, missing, failing or stale evidence, a flag on.
ROLLBACK_FROM = {
    "at 5 fresh": AT_5_FRESH, "at 10": AT_10, "at 50": AT_50, "at 100 fresh": AT_100_FRESH,
    "at 100 complete": AT_100_DONE, "fast at 5": FAST_AT_5,
    "at 10 with an untested release": STAGING_UNTESTED_AT_10,
    "production at 10 with an image staging never ran": state("production", ((0, 3 * DAY), (5, 2 * DAY), (10, HOUR)),
                                                               canary=UNTESTED),
    "at 25 with a history recorded without releases": state(history=((0, 4 * DAY), (5, 3 * DAY), (25, HOUR)),
                                                             releases={0: None, 1: None, 2: None}),
}
ROLLBACK_EVIDENCE = {
    "no evidence": lambda d: None,
    "failing evidence": lambda d: evidence(d, errorRatio=0.5, errors=6000, latencyP99Seconds=9.0, consecutiveFailedHealthChecks=40),
    "stale evidence": lambda d: evidence(d, collected_ago=3 * 86400),
    "evidence that never saw traffic": lambda d: evidence(d, traffic_since=None, requests="empty"),
}
for origin, deployed in ROLLBACK_FROM.items():
    for kind, make in ROLLBACK_EVIDENCE.items():
        TABLE[f"rollback {origin}, {kind}"] = (then(deployed, 0, reason="rollback"), deployed, make(deployed),
                                               STAGING_R_AT_5_FRESH if deployed["stack"] == "production" else None,
                                               set())
        TABLE[f"rollback {origin} with a safety flag on, {kind}"] = (
            then(deployed, 0, reason="incident", flags_on=["emergency_shutdown"]), deployed, make(deployed), None, set())
    # The history is append-only in every direction: a "rollback" that rewrites it is no rollback.
    TABLE[f"rollback {origin} over a rewritten history is refused"] = (
        then(backdated(deployed, 0, 2 * HOUR), 0, reason="rollback"), deployed, None, None, {HISTORY_APPEND_ONLY})


# --- the transition as a whole (issue: the gates judge the whole transition) -------------------


def renamed(state_: dict, name: str, **service_changes) -> dict:
    """``state_`` with its service under another key (the same route), other fields replaced."""
    new = copy.deepcopy(state_)
    service = new["services"].pop(SERVICE)
    service["name"] = name
    for key, value in service_changes.items():
        service[key] = value if not isinstance(value, dict) else {**service[key], **value}
    new["services"][name] = service
    return new


def routed(state_: dict) -> dict:
    new = copy.deepcopy(state_)
    new["services"][SERVICE]["route"] = {"hostnames": ["genesis.example.com"],
                                         "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "method": None}]}
    return new


def changed(state_: dict, **top) -> dict:
    return {**copy.deepcopy(state_), **top}


MINUTE = timedelta(minutes=1)
ROUTED_PROD = routed(state("production", history=((0, 9 * DAY), (5, 8 * DAY), (10, 7 * DAY), (25, 6 * DAY),
                                                  (50, 5 * DAY), (75, 4 * DAY), (100, 3 * DAY))))
ONE_ZERO = [{"weight": 0, "startedAt": format_time(NOW - HOUR), "release": UNTESTED, "plan": "safe", "reason": None}]
NEVER_WALKED = then(state(history=((0, 4 * DAY), (5, 3 * DAY), (10, 2 * DAY))), 100, DAY)
WALKED = state(history=((0, 4 * DAY), (5, 3 * DAY), (10, 2 * DAY)))
PROD_5_FRESH_STAGING_BEHIND = state("production", history=((0, 3 * DAY), (5, 2 * DAY)))
CUSTOM_5 = copy.deepcopy(AT_5)
CUSTOM_5["services"][SERVICE]["plan"] = "custom"
SHORT_CUSTOM = copy.deepcopy(CUSTOM_5)
SHORT_CUSTOM["services"][SERVICE]["stages"] = [{**s, "soakSeconds": 60} if s["weight"] == 5 else s
                                               for s in SHORT_CUSTOM["services"][SERVICE]["stages"]]
def custom_then(deployed: dict, weight: int) -> dict:
    """``deployed`` (a custom plan) with ``weight`` appended now, keeping its stages."""
    new = copy.deepcopy(deployed)
    service = new["services"][SERVICE]
    entries = [*service["history"], {"weight": weight, "startedAt": format_time(NOW), "release": R, "plan": "custom",
                                     "reason": None}]
    tracks = {"canary": {"image": R, "minReplicas": 1}, "stable": {"image": OLD, "replicas": 2, "previousImage": None}}
    new["services"][SERVICE] = service_state(SERVICE, "custom", service["stages"], entries, NOW, tracks)
    return new


AT_5_SOAKED_12H = state(history=((0, 3 * DAY), (5, 12 * HOUR)))
EDITED_IN_PLACE = copy.deepcopy(AT_10)
EDITED_IN_PLACE["services"][SERVICE]["history"][-1]["weight"] = 0
EDITED_IN_PLACE = then(EDITED_IN_PLACE, None, history=EDITED_IN_PLACE["services"][SERVICE]["history"])
def WITH_NEW_SERVICE(stable_image: str) -> dict:  # noqa: N802 - a row's state, named like the others
    """Production as deployed, plus a new service (its own route, at 0 %) whose stable track runs ``stable_image``."""
    new = copy.deepcopy(ROUTED_PROD)
    added = renamed(ROUTED_PROD, "genesis-api", stable={"image": stable_image}, history=ONE_ZERO,
                    route={"hostnames": ["api.example.com"]})["services"]["genesis-api"]
    added.update(weight=0, stageStartedAt=ONE_ZERO[0]["startedAt"])
    new["services"]["genesis-api"] = added
    return new


STAGING_WITH_API = copy.deepcopy(STAGING_R_AT_10)
STAGING_WITH_API["services"]["genesis-api"] = {**STAGING_WITH_API["services"][SERVICE], "name": "genesis-api"}
TWO = copy.deepcopy(AT_5)
TWO["services"]["exodus"] = {**copy.deepcopy(AT_5["services"][SERVICE]), "name": "exodus",
                             "route": {"hostnames": ["exodus.example.com"], "matches": []}}
TWO_ONE_REMOVED_ONE_UP = then(TWO, 10)
TWO_ONE_REMOVED_ONE_UP["services"].pop("exodus", None)
ONE_REMOVED_ALONE = copy.deepcopy(TWO)
ONE_REMOVED_ALONE["services"].pop("exodus")

TABLE.update({
    # 1. a service renamed is the service its route serves: its history and gates apply
    "a rename with an untested stable image and a fresh 0% history is refused": (
        renamed(ROUTED_PROD, "genesis-v2", stable={"image": UNTESTED}, history=ONE_ZERO), ROUTED_PROD, None,
        STAGING_R_AT_10, {HISTORY_APPEND_ONLY, STABLE_COMPLETED_ONLY}),
    "a rename that keeps everything passes, listed as a loosening": (
        renamed(ROUTED_PROD, "genesis-v2"), ROUTED_PROD, None, STAGING_R_AT_10, set()),
    "a new service in production on a stable release staging does not run is refused": (
        WITH_NEW_SERVICE(UNTESTED), ROUTED_PROD, None, STAGING_R_AT_10, {STAGING_FIRST}),
    "a new service in production on the stable release staging runs passes": (
        WITH_NEW_SERVICE(OLD), ROUTED_PROD, None, STAGING_WITH_API, set()),
    "a deployed service removed while another advances is refused": (
        TWO_ONE_REMOVED_ONE_UP, TWO, evidence(TWO), None, {NO_LOOSENING_ON_ADVANCE}),
    "a deployed service removed in a change of its own passes": (ONE_REMOVED_ALONE, TWO, None, None, set()),
    # 2. a safety setting loosened in the same change as the advance
    "promotesFrom deleted while production advances is refused": (
        changed(then(PROD_5_FRESH_STAGING_BEHIND, 10), promotesFrom=None), PROD_5_FRESH_STAGING_BEHIND,
        evidence(PROD_5_FRESH_STAGING_BEHIND, STAGING_R_AT_5_FRESH), STAGING_R_AT_5_FRESH,
        {STAGING_FIRST, NO_LOOSENING_ON_ADVANCE}),
    "promotesFrom deleted in a change of its own passes": (
        changed(PROD_5_FRESH_STAGING_BEHIND, promotesFrom=None), PROD_5_FRESH_STAGING_BEHIND, None,
        STAGING_R_AT_5_FRESH, set()),
    "a safety flag switched off while advancing is refused": (
        then(AT_5, 10, flags_on=[]), changed(AT_5, safetyFlagsOn=["maintenance_mode"]),
        evidence(changed(AT_5, safetyFlagsOn=["maintenance_mode"])), None,
        {NO_SAFETY_FLAG_ON_ADVANCE, NO_LOOSENING_ON_ADVANCE}),
    "a safety flag switched off in a change of its own passes": (
        changed(AT_5, safetyFlagsOn=[]), changed(AT_5, safetyFlagsOn=["maintenance_mode"]), None, None, set()),
    "safe -> fast while advancing from a 12 h old stage is refused": (
        then(AT_5_SOAKED_12H, 10, plan="fast"), AT_5_SOAKED_12H, evidence(AT_5_SOAKED_12H), None,
        {SOAK_SERVED, NO_LOOSENING_ON_ADVANCE}),
    "a custom soak shortened from 1d to 1m while advancing is refused": (
        custom_then(SHORT_CUSTOM, 10), CUSTOM_5, evidence(CUSTOM_5), None, {NO_LOOSENING_ON_ADVANCE}),
    "the tier lowered while production advances is refused": (
        changed(then(PROD_0, 5), tier="staging"), PROD_0, evidence(PROD_0, STAGING_R_AT_10), STAGING_R_AT_10,
        {NO_LOOSENING_ON_ADVANCE}),
    "the tier lowered in a change of its own passes": (changed(PROD_0, tier="staging"), PROD_0, None, None, set()),
    "the namespace changed while advancing is refused": (
        changed(then(changed(AT_5, namespace="rollout"), 10), namespace="elsewhere"), changed(AT_5, namespace="rollout"),
        evidence(changed(AT_5, namespace="rollout")), None, {NO_LOOSENING_ON_ADVANCE}),
    "a threshold loosened while advancing is refused": (
        changed(then(AT_5, 10), canary={**AT_5["canary"], "minRequests": 1}), AT_5, evidence(AT_5), None,
        {NO_LOOSENING_ON_ADVANCE}),
    # 3. a "rollback" that rewrites history
    "the last deployed entry edited in place from 10 to 0 is refused": (EDITED_IN_PLACE, AT_10, None, None,
                                                                        {HISTORY_APPEND_ONLY}),
    "an advance a minute after a rollback appended is refused": (
        then(then(AT_10, 0, 2 * MINUTE), 5, MINUTE), then(AT_10, 0, 2 * MINUTE), evidence(then(AT_10, 0, 2 * MINUTE)), None,
        {SOAK_SERVED}),
    # 4. no deployed state: the history alone walks the plan from 0, each stage soaked
    "never deployed, 10 -> 100 is refused": (NEVER_WALKED, None, None, None, {NEXT_STAGE_ONLY}),
    "never deployed, a soaked walk to 10 passes": (WALKED, None, None, None, set()),
})
# 5. the judged cannot change the judge: an advance changes only stack files
TABLE["an advance that also changes the gate code is refused"] = (
    then(AT_5, 10), AT_5, evidence(AT_5), None, {STACK_FILES_ONLY}, ["stacks/Pulumi.staging.yaml", "rollout/gates/judge.py"])
TABLE["an advance that changes only its stack file passes"] = (
    then(AT_5, 10), AT_5, evidence(AT_5), None, set(), ["stacks/Pulumi.staging.yaml"])
TABLE["a code change that raises no weight passes"] = (
    AT_5, AT_5, None, None, set(), ["policies/rules.py"])


# 6. the fleet: several upstreams, a halt upstream, the fleet-wide limit, release groups, freeze windows.
# A row's seventh item holds what the fleet gates read: each upstream's state and the fleet's view.


def _stack(state_: dict, name: str, **top) -> dict:
    return changed(state_, stack=name, **top)


def _with_entry(state_: dict, **entry) -> dict:
    """``state_`` with one more history entry of genesis (an override or a resume), its stage kept."""
    new = copy.deepcopy(state_)
    service = new["services"][SERVICE]
    history = [*service["history"], {"release": service["canary"]["image"], "plan": service["plan"], "reason": None,
                                     **entry}]
    tracks = {"canary": {"image": service["canary"]["image"], "minReplicas": 1},
              "stable": {"image": service["stable"]["image"], "replicas": 2,
                         "previousImage": service["stable"]["previousImage"]}}
    new["services"][SERVICE] = service_state(SERVICE, service["plan"], service["stages"], history, NOW, tracks)
    return new


EU_5 = _stack(state("production", history=((0, 3 * DAY), (5, 2 * DAY))), "prod-eu",
              promotesFrom=["staging", "prod-canary"])
ONE_UP_5 = _stack(state("production", history=((0, 3 * DAY), (5, 2 * DAY))), "prod-eu", promotesFrom="prod-canary")
CANARY_REGION_25 = _stack(state(history=((0, 6 * DAY), (5, 5 * DAY), (10, 4 * DAY), (25, 2 * DAY))), "prod-canary",
                          promotesFrom="staging")
STAGING_ROLLED_BACK = then(AT_10, 0, 2 * HOUR, reason="CanaryErrorRateCritical")
STAGING_RESUMED = _with_entry(STAGING_ROLLED_BACK, weight=0, startedAt=format_time(NOW - HOUR), kind="resume",
                              by="alice", reason="the errors were staging's database, not the release")
REGIONS = {"group": "regions", "maxInProgress": 1}
EU_0 = _stack(state("production", history=((0, 2 * DAY),)), "prod-eu", promotesFrom=None, fleet=REGIONS)
US_5 = _stack(AT_5, "prod-us", fleet=REGIONS)
US_PROMOTED = _stack(PROMOTED, "prod-us", fleet=REGIONS)
GROUPED = copy.deepcopy(AT_5)
GROUPED["releaseGroups"] = {"checkout": ["exodus", SERVICE]}
GROUPED["services"]["exodus"] = {**copy.deepcopy(AT_5_FRESH["services"][SERVICE]), "name": "exodus",
                                 "route": {"hostnames": ["exodus.example.com"], "matches": []}}
GROUPED_SOAKED = copy.deepcopy(GROUPED)
GROUPED_SOAKED["services"]["exodus"] = {**copy.deepcopy(AT_5["services"][SERVICE]), "name": "exodus",
                                        "route": {"hostnames": ["exodus.example.com"], "matches": []}}


def _grouped_then(deployed: dict, weight: int) -> dict:
    new = then(deployed, weight)
    new["services"]["exodus"] = copy.deepcopy(deployed["services"]["exodus"])
    return new


def _freeze(allow_override: bool) -> dict:
    window = {"name": "incident-review", "start": (NOW - HOUR).strftime("%Y-%m-%d %H:%M"),
              "end": (NOW + 2 * HOUR).strftime("%Y-%m-%d %H:%M")}
    return {"timeZone": "UTC", "allowOverride": allow_override, "windows": [window]}


FROZEN_5 = changed(AT_5, freeze=_freeze(False))
OVERRIDABLE_5 = changed(AT_5, freeze=_freeze(True))


def _overridden_then(deployed: dict, weight: int) -> dict:
    overridden = _with_entry(deployed, weight=deployed["services"][SERVICE]["weight"],
                             startedAt=format_time(NOW - MINUTE), kind="override", by="alice",
                             reason="the fix for incident 42", until=format_time(NOW + HOUR))
    return then(overridden, weight)


TABLE.update({
    "prod-eu to 10% while one of its two upstreams has not completed 10% is refused": (
        then(EU_5, 10), EU_5, evidence(EU_5), None, {STAGING_FIRST}, None,
        {"upstreams": {"staging": AT_10, "prod-canary": _stack(AT_5_FRESH, "prod-canary")}}),
    "prod-eu to 10% once both its upstreams completed 10% passes": (
        then(EU_5, 10), EU_5, evidence(EU_5), None, set(), None,
        {"upstreams": {"staging": AT_10, "prod-canary": _stack(AT_10, "prod-canary")}}),
    "an advance of a release rolled back two stacks upstream is refused": (
        then(ONE_UP_5, 10), ONE_UP_5, evidence(ONE_UP_5, CANARY_REGION_25), CANARY_REGION_25, {FLEET_HALT}, None,
        {"fleet": {"ancestors": ["prod-canary", "staging"],
                   "states": {"prod-canary": CANARY_REGION_25, "staging": STAGING_ROLLED_BACK}}}),
    "an advance after the rollback upstream was resumed in its history passes": (
        then(ONE_UP_5, 10), ONE_UP_5, evidence(ONE_UP_5, CANARY_REGION_25), CANARY_REGION_25, set(), None,
        {"fleet": {"ancestors": ["prod-canary", "staging"],
                   "states": {"prod-canary": CANARY_REGION_25, "staging": STAGING_RESUMED}}}),
    "a second region entering 5% while the limit of one is held is refused": (
        then(EU_0, 5), EU_0, evidence(EU_0), None, {FLEET_LIMIT}, None,
        {"fleet": {"groups": {"regions": ["prod-us"]}, "states": {"prod-us": US_5}}}),
    "a second region entering 5% once a region completed the release passes": (
        then(EU_0, 5), EU_0, evidence(EU_0), None, set(), None,
        {"fleet": {"groups": {"regions": ["prod-us"]}, "states": {"prod-us": US_PROMOTED}}}),
    "a second region entering 5% within a limit of two passes": (
        then(changed(EU_0, fleet={"group": "regions", "maxInProgress": 2}), 5),
        changed(EU_0, fleet={"group": "regions", "maxInProgress": 2}),
        evidence(changed(EU_0, fleet={"group": "regions", "maxInProgress": 2})), None, set(), None,
        {"fleet": {"groups": {"regions": ["prod-us"]}, "states": {"prod-us": US_5}}}),
    "a member entering 10% before the other member completed 5% is refused": (
        _grouped_then(GROUPED, 10), GROUPED, evidence(GROUPED), None, {RELEASE_GROUP_IN_STEP}),
    "a member entering 10% after every member completed 5% passes": (
        _grouped_then(GROUPED_SOAKED, 10), GROUPED_SOAKED, evidence(GROUPED_SOAKED), None, set()),
    "an advance inside a freeze window is refused": (then(FROZEN_5, 10), FROZEN_5, evidence(FROZEN_5), None,
                                                      {FREEZE_WINDOW}),
    "a release inside a freeze window is refused": (then(FROZEN_5, 0, canary=NEW), FROZEN_5, None, None,
                                                    {FREEZE_WINDOW}),
    "a rollback inside a freeze window passes": (then(FROZEN_5, 0, reason="errors"), FROZEN_5, None, None, set()),
    "an advance inside a window with a recorded override passes": (
        _overridden_then(OVERRIDABLE_5, 10), OVERRIDABLE_5, evidence(OVERRIDABLE_5), None, set()),
    "an override on a stack that does not allow overrides is refused": (
        _overridden_then(FROZEN_5, 10), FROZEN_5, evidence(FROZEN_5), None, {FREEZE_WINDOW}),
})


def _row(name: str):
    new, deployed, evidence_, upstream, expected, *rest = TABLE[name]
    return new, deployed, evidence_, upstream, expected, (rest[0] if rest else None), (rest[1] if len(rest) > 1 else {})


def judge_with_evidence(new, evidence_, now, deployed_state=None, upstream_state=None):
    """The gates as ``rollout check`` and the pack call them: with evidence, its deployed state is deployed."""
    return judge(transition_from_json(new, deployed_state, evidence_, upstream_state, now))


def verdict(new, deployed, evidence_, upstream, files=None, extra=None) -> set[str]:
    extra = extra or {}
    return {v.policy for v in judge(transition_from_json(new, deployed, evidence_, upstream, NOW, files,
                                                         upstreams=extra.get("upstreams"), fleet=extra.get("fleet")))}


@pytest.mark.parametrize("name", list(TABLE))
def test_the_gates_judge_each_transition(name):
    new, deployed, evidence_, upstream, expected, files, extra = _row(name)
    assert verdict(new, deployed, evidence_, upstream, files, extra) == expected


def test_the_table_covers_every_gate_both_ways():
    refused = {gate for name in TABLE for gate in _row(name)[4]}
    assert refused == set(GATES)
    assert sum(1 for name in TABLE if not _row(name)[4]) > len(ROLLBACK_FROM) * len(ROLLBACK_EVIDENCE)


def _message(name: str, gate: str) -> str:
    new, deployed, evidence_, upstream, *_ = TABLE[name]
    (found,) = [v.message for v in judge_with_evidence(new, evidence_, NOW, deployed_state=deployed,
                                                        upstream_state=upstream) if v.policy == gate]
    return found


def test_the_messages_name_what_is_wrong():
    assert f"changes from {R} to {NEW} at 10%" in _message("a new canary image at 10% is refused",
                                                           NEW_RELEASE_NEW_ROLLOUT)
    backdated_ = _message("a deployed entry backdated 23 h is refused", HISTORY_APPEND_ONLY)
    assert backdated_.startswith("history[2] differs from the deployed entry (10% from ") and "startedAt" in backdated_
    assert _message("a deployed entry removed is refused", HISTORY_APPEND_ONLY).startswith("history[2] (the deployed 10%")
    assert f"stable.image changes from {OLD} to {UNTESTED}" in _message(
        "stable edited to an untested image is refused", STABLE_COMPLETED_ONLY)
    assert f"staging has not run release {UNTESTED}" in _message(
        "production to 5% with an image staging never ran is refused", STAGING_FIRST)
    covered = _message("evidence covering 5 minutes of a 1-day stage is refused", SOAK_SERVED)
    assert covered.startswith("the evidence covers 5m of the 5% stage's 1d soak"), covered


def _serve(pack, new, deployed, evidence_, upstream, files=None, extra=None) -> set[str]:
    levels = {}
    extra = extra or {}
    for name in GATES:
        properties = struct_pb2.Struct()
        # As `python -m policies.pack` writes it: a source without a state is a stack never deployed.
        config = {"deployedState": deployed, "deployedStateSource": "none: never deployed" if deployed is None else "a test",
                  "evidence": evidence_, "upstreamState": upstream, "changedFiles": files,
                  "upstreamStates": extra.get("upstreams"), "fleet": extra.get("fleet")}
        if extra.get("upstreams"):
            config["upstreamStateSource"] = "a test"
        properties.update({k: v for k, v in config.items() if v is not None})
        levels[name] = analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY, properties=properties)
    for name in RESOURCE_POLICIES:
        levels[name] = analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.ADVISORY)
    pack.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=levels))
    properties = struct_pb2.Struct()
    properties.update({"input": new})
    request = analyzer_pb2.AnalyzeStackRequest()
    request.resources.append(analyzer_pb2.AnalyzerResource(
        type=rules.STASH, name=rules.STATE_STASH, urn=f"urn:pulumi:{new['stack']}::rollout::{rules.STASH}::rollout-state",
        properties=properties))
    response = pack.AnalyzeStack(request)
    return {d.policyName for d in response.diagnostics if d.policyName in GATES}


def test_the_served_pack_gives_the_same_verdicts_as_the_gates_on_the_whole_table(pack):  # noqa: F811
    differ = {}
    for name in TABLE:
        new, deployed, evidence_, upstream, expected, files, extra = _row(name)
        served = _serve(pack, new, deployed, evidence_, upstream, files, extra)
        if served != expected:
            differ[name] = (served, expected)
    assert differ == {}


@pytest.mark.parametrize("weight, stable, minimum, expected", [
    (0, 3, 2, 2), (5, 3, 2, 2), (50, 3, 2, 2), (75, 3, 2, 3), (100, 3, 2, 3), (100, 10, 1, 10), (10, 10, 0, 1),
    (0, 10, 0, 0),
])
def test_the_canary_carries_its_share_of_the_stable_replicas(weight, stable, minimum, expected):
    assert canary_replicas(weight, stable, minimum) == expected


def test_a_digest_identifies_the_release():
    digest = "sha256:" + "b" * 64
    assert release_of(f"ghcr.io/example/genesis:1.5.0@{digest}") == digest
    assert release_of(f"mirror.example/genesis@{digest}") == digest
    assert release_of("ghcr.io/example/genesis:1.5.0") == "ghcr.io/example/genesis:1.5.0"
