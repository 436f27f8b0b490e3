"""The rollout state of a stack: what the gates judge and what CI reads back.

:func:`rollout_state` turns a validated :class:`~rollout.model.config.StackConfig` into a
plain, JSON-able mapping. The program exports it as the stack output
``rolloutState``, so "what is deployed" can be read from the stack's outputs; the
CLI builds the same mapping from a stack file (the working tree or a git base);
the gates (:mod:`rollout.gates.judge`) compare two of them.

Shape (keys camelCase like the stack file; times ISO 8601 UTC, ``...Z``)::

    {
      "version": 1,
      "stack": "staging",
      "tier": "staging",
      "promotesFrom": null,                       # or the upstream stack's name, or a list of them
      "namespace": "rollout",                     # Kubernetes namespace; null on Docker
      "canary": {"maxErrorRatio": 0.01, "maxLatencyP95Seconds": 0.5,
                 "maxLatencyP99Seconds": 1.0, "maxConsecutiveFailedHealthChecks": 5,
                 "minRequests": 100, "evidenceMaxAgeSeconds": 1800,
                 "confidence": 0.95,                # how sure each measure's verdict must be
                 "negligible": 0.1,                 # a share under this fraction of its budget is never
                                                    # "worse than stable"
                 "toleranceErrorRatio": 2.0, "toleranceLatencyP95": 2.0,  # times stable's share
                 "toleranceLatencyP99": 2.0},
      "safetyFlagsOn": [],                        # safety flags switched on, sorted
      "fleet": {"group": "regions", "maxInProgress": 2},   # the fleet-wide limit; null: none
      "releaseGroups": {"checkout": ["api", "worker"]},   # services that move together
      "freeze": {"timeZone": "Europe/Berlin", "allowOverride": true,
                 "windows": [{"name": "weekend", "start": "Friday 16:00", "end": "Monday 08:00"}]},
      "services": {
        "genesis": {
          "name": "genesis",
          "plan": "safe",
          "stages": [{"weight": 0, "soakSeconds": 86400}, ...],
          "history": [{"weight": 0, "startedAt": "2026-11-16T09:00:00Z",
                       "release": "ghcr.io/example/genesis:1.5.0",   # null: not recorded
                       "plan": "safe",                               # null: the current plan
                       "reason": null}, ...],         # an override or a resume adds "kind",
                                                          # "by" and "until" (an override's end)
          "weight": 10,                           # the last history entry's weight
          "release": "ghcr.io/example/genesis:1.5.0",  # the canary's release (its digest when given)
          "canary": {"image": "...:1.5.0", "release": "...:1.5.0", "minReplicas": 1, "replicas": 1},
          "stable": {"image": "...:1.4.2", "release": "...:1.4.2", "replicas": 2,
                     "previousImage": null},      # the stable image before the last promote
          "stageStartedAt": "2026-11-18T09:00:00Z",
          "stageSoakSeconds": 86400,              # minimum soak of the current stage, under
                                                  # the plan it was entered with
          "nextWeight": 25,                       # the plan's first stage above the weight; null at 100
          "earliestAdvanceAt": "2026-11-19T09:00:00Z",   # null at the final stage
          "completesAt": null,                    # at 100: when its final soak ends
          "complete": false,                      # at 100 and the final soak served
          "route": {"hostnames": ["genesis.example.com"],   # what the service serves: its identity
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "method": null}]}
        }
      }
    }

Only ``complete`` depends on the clock (the ``now`` argument); everything else is a
function of the config alone. The gates never trust ``complete`` from a stored
state: they recompute it from ``stageStartedAt`` and the soaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from rollout.model.config import StackConfig
from rollout.model.plans import BUILTIN_PLANS, Plan
from rollout.model.releases import canary_replicas, release_of, same_release
from rollout.model.time import format_time, parse_time, utc_now

#: Version of the state mapping; bumped when a key changes meaning.
STATE_VERSION = 3


def _stage_list(plan: Plan) -> list[dict[str, int]]:
    return [{"weight": s.weight, "soakSeconds": int(s.soak.total_seconds())} for s in plan.stages]


def _entry_soak(entry: Mapping[str, Any], plan_name: str, stages: list[dict[str, int]]) -> int | None:
    """The minimum soak, in seconds, of the stage an entry entered: under the plan it was
    written with (its ``plan``; none recorded: the current plan). An entry off the
    current plan whose own plan is unknown gets the longest soak any built-in plan
    gives that weight, so a plan change never shortens a stage already entered."""
    weight, written = entry["weight"], entry.get("plan") or plan_name
    if written == plan_name or written == "custom":
        for stage in stages:
            if stage["weight"] == weight:
                return stage["soakSeconds"]
        if written == plan_name and entry.get("plan") is not None:
            return None
    if written in BUILTIN_PLANS and written != plan_name:
        stage = BUILTIN_PLANS[written].stage_of(weight)
        return int(stage.soak.total_seconds()) if stage else None
    soaks = [int(p.stage_of(weight).soak.total_seconds()) for p in BUILTIN_PLANS.values() if p.stage_of(weight)]
    return max(soaks) if soaks else None


def _tracks(tracks: Mapping[str, Any] | None, weight: int) -> dict[str, Any]:
    tracks = tracks or {}
    canary = dict(tracks.get("canary") or {})
    stable = dict(tracks.get("stable") or {})
    minimum, carrying = canary.get("minReplicas"), stable.get("replicas")
    idle = same_release(canary.get("image"), stable.get("image"))
    replicas = canary_replicas(weight, carrying, minimum, idle) if minimum is not None and carrying is not None else None
    return {
        "canary": {"image": canary.get("image"), "release": release_of(canary.get("image")),
                   "minReplicas": minimum, "replicas": replicas},
        "stable": {"image": stable.get("image"), "release": release_of(stable.get("image")),
                   "replicas": stable.get("replicas"), "previousImage": stable.get("previousImage")},
    }


def service_state(
    name: str,
    plan_name: str,
    stages: Iterable[Mapping[str, Any]],
    history: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
    tracks: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state of one service from its plan's stages, its history and its tracks.

    ``stages`` are ``{"weight", "soakSeconds"}`` mappings, ``history`` entries are
    ``{"weight", "startedAt", "release", "plan", "reason"}`` (release, plan and
    reason optional) with ``startedAt`` an ISO string or a datetime; ``tracks`` is
    ``{"canary": {"image", "minReplicas"}, "stable": {"image", "replicas",
    "previousImage"}}``. Derived keys (current weight, stage start, next weight,
    earliest advance, completion, releases) are computed here so that every
    producer of a state agrees on them.
    """
    stages = [{"weight": int(s["weight"]), "soakSeconds": int(s["soakSeconds"])} for s in stages]
    entries = []
    for entry in history:
        started = entry["startedAt"]
        started = started if isinstance(started, datetime) else parse_time(started)
        stored = {
            "weight": int(entry["weight"]),
            "startedAt": format_time(started),
            "release": entry.get("release"),
            "plan": entry.get("plan"),
            "reason": entry.get("reason"),
        }
        if entry.get("kind", "stage") != "stage":
            # An override or a resume: recorded, but no stage of its own.
            until = entry.get("until")
            stored.update(kind=entry["kind"], by=entry.get("by"),
                          until=format_time(until) if isinstance(until, datetime) else until)
        entries.append(stored)
    if not entries:
        raise ValueError(f"service {name}: the rollout history is empty")
    current = next((e for e in reversed(entries) if e.get("kind", "stage") == "stage"), entries[-1])
    weight = current["weight"]
    started_at = parse_time(current["startedAt"])
    weights = [s["weight"] for s in stages]
    soak = _entry_soak(current, plan_name, stages)
    # The next stage is the current plan's first stage above the current weight,
    # so a plan changed mid-rollout goes on from where the rollout stands.
    next_weight = next((w for w in weights if w > weight), None)
    soak_end = format_time(started_at + timedelta(seconds=soak)) if soak is not None else None
    final = weight == 100
    now = now or utc_now()
    tracks_state = _tracks(tracks, weight)
    return {
        "name": name,
        "plan": plan_name,
        "stages": stages,
        "history": entries,
        "weight": weight,
        "release": tracks_state["canary"]["release"],
        "canary": tracks_state["canary"],
        "stable": tracks_state["stable"],
        "stageStartedAt": current["startedAt"],
        "stageSoakSeconds": soak,
        "nextWeight": next_weight,
        "earliestAdvanceAt": soak_end if next_weight is not None else None,
        "completesAt": soak_end if final else None,
        "complete": bool(final and soak_end is not None and now >= parse_time(soak_end)),
    }


def rollout_state(config: StackConfig, stack: str, now: datetime | None = None) -> dict[str, Any]:
    """Everything the gates need to know about a stack's rollout, as plain JSON data.

    ``now`` only decides each service's ``complete``; it defaults to the current
    time. See the module docstring for the shape.
    """
    canary = config.canary
    services = {}
    for service in config.services:
        settings = service.rollout
        services[service.name] = state = service_state(
            service.name,
            settings.plan,
            _stage_list(settings.plan_model),
            [
                {"weight": e.weight, "startedAt": e.started_at, "release": e.release, "plan": e.plan, "reason": e.reason,
                 "kind": e.kind, "by": e.by, "until": e.until}
                for e in settings.history
            ],
            now,
            {
                "canary": {"image": service.canary.image, "minReplicas": service.canary.replicas},
                "stable": {
                    "image": service.stable.image,
                    "replicas": service.stable.replicas,
                    "previousImage": service.stable.previous_image,
                },
            },
        )
        # What the service serves identifies it, whatever its key (a rename is the same service).
        state["route"] = {
            "hostnames": list(service.route.hostnames),
            "matches": [match.model_dump(mode="json", by_alias=True) for match in service.route.matches],
        }
    return {
        "version": STATE_VERSION,
        "stack": stack,
        "tier": config.tier,
        "promotesFrom": config.promotes_from,
        # Where the live routes are read from: the deployed side's, never the proposal's.
        "namespace": config.kubernetes.namespace if config.kubernetes is not None else None,
        "canary": {
            "maxErrorRatio": canary.max_error_ratio,
            "maxLatencyP95Seconds": canary.max_latency_p95_seconds,
            "maxLatencyP99Seconds": canary.max_latency_p99_seconds,
            "maxConsecutiveFailedHealthChecks": canary.max_consecutive_failed_health_checks,
            "minRequests": canary.min_requests,
            "evidenceMaxAgeSeconds": int(canary.evidence_max_age.total_seconds()),
            "confidence": canary.confidence.level,
            "negligible": canary.confidence.negligible,
            "toleranceErrorRatio": canary.confidence.tolerance.error_ratio,
            "toleranceLatencyP95": canary.confidence.tolerance.latency_p95,
            "toleranceLatencyP99": canary.confidence.tolerance.latency_p99,
        },
        "safetyFlagsOn": sorted(config.safety_flags_on()),
        # The fleet: the limit's group, the services that move together, the freeze windows.
        "fleet": {"group": config.fleet.group, "maxInProgress": config.fleet.max_in_progress}
        if config.fleet is not None else None,
        "releaseGroups": {group: list(members) for group, members in sorted(config.release_groups.items())},
        "freeze": {
            "timeZone": config.freeze.time_zone,
            "allowOverride": config.freeze.allow_override,
            "windows": [{"name": w.name, "start": w.start, "end": w.end} for w in config.freeze.windows],
        },
        "services": services,
    }


def _track_inputs(service: Mapping[str, Any]) -> dict[str, Any]:
    canary, stable = service.get("canary") or {}, service.get("stable") or {}
    return {
        "canary": {"image": canary.get("image"), "minReplicas": canary.get("minReplicas")},
        "stable": {"image": stable.get("image"), "replicas": stable.get("replicas"),
                   "previousImage": stable.get("previousImage")},
    }


def with_entry(
    state: Mapping[str, Any],
    service: str,
    weight: int,
    started_at: datetime,
    reason: str | None = None,
    now: datetime | None = None,
    *,
    canary_image: str | None = None,
    stable_image: str | None = None,
    previous_stable_image: str | None = None,
    kind: str = "stage",
    by: str | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """A copy of ``state`` with one history entry appended to ``service``.

    This is what ``rollout advance``, ``rollback``, ``release`` and ``promote``
    are about to write, so the gates can judge it before the stack file changes.
    The entry records the canary's image (``canary_image`` when it changes) and the
    current plan; ``stable_image`` and ``previous_stable_image`` change the stable
    track (a promote).
    """
    current = state["services"][service]
    tracks = _track_inputs(current)
    if canary_image is not None:
        tracks["canary"]["image"] = canary_image
    if stable_image is not None:
        tracks["stable"]["image"] = stable_image
        tracks["stable"]["previousImage"] = previous_stable_image
    entry = {"weight": weight, "startedAt": started_at, "release": tracks["canary"]["image"],
             "plan": current["plan"], "reason": reason, "kind": kind, "by": by, "until": until}
    history = [*current["history"], entry]
    services = dict(state["services"])
    services[service] = service_state(service, current["plan"], current["stages"], history, now, tracks)
    if "route" in current:
        services[service]["route"] = current["route"]
    return {**state, "services": services}


def as_at(state: Mapping[str, Any] | None, now: datetime) -> Mapping[str, Any] | None:
    """``state`` as it stood at ``now``: each service's history up to ``now`` (a rehearsal with
    ``--now`` reads another stack as that stack had progressed by then, never its later entries).

    The canary's image is the release the last kept entry records; a promote among the dropped
    entries (0 % after 100 % of the release the stable track now runs) had not happened yet, so the
    stable track runs ``stable.previousImage`` then. A service whose whole history lies after
    ``now`` is kept as it is (it cannot be told how it stood): the gates judge it on its own.
    """
    if not isinstance(state, Mapping) or not isinstance(state.get("services"), Mapping):
        return state
    services = dict(state["services"])
    changed = False
    for name, service in state["services"].items():
        history = service.get("history") if isinstance(service, Mapping) else None
        if not isinstance(history, list) or not history:
            continue
        try:
            kept = [e for e in history if parse_time(e["startedAt"]) <= now]
        except (KeyError, TypeError, ValueError):
            continue
        if not kept or len(kept) == len(history):
            continue
        tracks = _track_inputs(service)
        dropped = history[len(kept):]
        previous = None
        for entry in [kept[-1], *dropped]:
            if (previous is not None and previous.get("weight") == 100 and entry.get("weight") == 0
                    and same_release(entry.get("release"), previous.get("release"))
                    and same_release(entry.get("release"), tracks["stable"]["image"])
                    and tracks["stable"]["previousImage"]):
                tracks["stable"]["image"] = tracks["stable"]["previousImage"]
                break
            previous = entry
        if kept[-1].get("release"):
            tracks["canary"]["image"] = kept[-1]["release"]
        try:
            rebuilt = service_state(name, service["plan"], service["stages"], kept, now, tracks)
        except (KeyError, TypeError, ValueError):
            continue  # not a state this code can rebuild: judged as stored
        services[name] = {**service, **rebuilt}
        changed = True
    return {**state, "services": services} if changed else state


def stage_soak(service: Mapping[str, Any], weight: int) -> timedelta | None:
    """The minimum soak of the stage at ``weight`` in this service's plan (None: not a stage)."""
    for stage in service.get("stages") or ():
        if stage.get("weight") == weight:
            return timedelta(seconds=stage["soakSeconds"])
    return None


def current_soak(service: Mapping[str, Any]) -> timedelta | None:
    """The minimum soak of the service's current stage, under the plan it was entered with."""
    seconds = service.get("stageSoakSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        return timedelta(seconds=seconds)
    return stage_soak(service, service.get("weight"))


@dataclass(frozen=True)
class Status:
    """Where one service's rollout stands at a given time (``rollout status``)."""

    service: str
    plan: str
    #: Current canary weight, percent.
    weight: int
    #: 1-based position of the current stage in the plan (None: off the plan).
    stage_number: int | None
    stage_count: int
    stage_started_at: datetime
    time_in_stage: timedelta
    #: Minimum soak of the current stage.
    soak: timedelta | None
    #: The next stage's weight; None at the final stage.
    next_weight: int | None
    #: When the current stage's soak is served and the next stage may begin.
    earliest_advance_at: datetime | None
    #: At the final stage (100 %) with its soak served.
    complete: bool
    #: At the final stage: when the rollout counts as complete.
    completes_at: datetime | None
    #: The canary's image (the release being rolled out) and the stable track's.
    canary_image: str | None = None
    stable_image: str | None = None
    #: The canary's replicas at the current weight.
    canary_replicas: int | None = None

    @property
    def soak_served(self) -> bool:
        return self.soak is not None and self.time_in_stage >= self.soak


def status(state_for_service: Mapping[str, Any], now: datetime) -> Status:
    """The status of one service (an entry of ``state["services"]``) at ``now``."""
    weights = [s["weight"] for s in state_for_service["stages"]]
    weight = state_for_service["weight"]
    started = parse_time(state_for_service["stageStartedAt"])
    soak = current_soak(state_for_service)
    next_weight = state_for_service.get("nextWeight")
    earliest = state_for_service.get("earliestAdvanceAt")
    completes = state_for_service.get("completesAt")
    completes_at = parse_time(completes) if completes else None
    return Status(
        service=state_for_service["name"],
        plan=state_for_service["plan"],
        weight=weight,
        stage_number=weights.index(weight) + 1 if weight in weights else None,
        stage_count=len(weights),
        stage_started_at=started,
        time_in_stage=max(now - started, timedelta(0)),
        soak=soak,
        next_weight=next_weight,
        earliest_advance_at=parse_time(earliest) if earliest and next_weight is not None else None,
        complete=completes_at is not None and now >= completes_at,
        completes_at=completes_at,
        canary_image=(state_for_service.get("canary") or {}).get("image"),
        stable_image=(state_for_service.get("stable") or {}).get("image"),
        canary_replicas=(state_for_service.get("canary") or {}).get("replicas"),
    )
