"""The rollout state of a stack: what the gates judge and what CI reads back.

:func:`rollout_state` turns a validated :class:`~rollout.config.StackConfig` into a
plain, JSON-able mapping. The program exports it as the stack output
``rolloutState``, so "what is deployed" can be read from the stack's outputs; the
CLI builds the same mapping from a stack file (the working tree or a git base);
the gates (:mod:`rollout.gates`) compare two of them.

Shape (keys camelCase like the stack file; times ISO 8601 UTC, ``...Z``)::

    {
      "version": 1,
      "stack": "staging",
      "tier": "staging",
      "promotesFrom": null,                       # or the upstream stack's name
      "canary": {"maxErrorRatio": 0.01, "maxLatencyP95Seconds": 0.5,
                 "maxLatencyP99Seconds": 1.0, "maxConsecutiveFailedHealthChecks": 5,
                 "minRequests": 100, "evidenceMaxAgeSeconds": 1800},
      "safetyFlagsOn": [],                        # safety flags switched on, sorted
      "services": {
        "genesis": {
          "name": "genesis",
          "plan": "safe",
          "stages": [{"weight": 0, "soakSeconds": 86400}, ...],
          "history": [{"weight": 0, "startedAt": "2026-11-16T09:00:00Z", "reason": null}, ...],
          "weight": 10,                           # the last history entry's weight
          "stageStartedAt": "2026-11-18T09:00:00Z",
          "stageSoakSeconds": 86400,              # minimum soak of the current stage
          "nextWeight": 25,                       # null at the final stage
          "earliestAdvanceAt": "2026-11-19T09:00:00Z",   # null at the final stage
          "completesAt": null,                    # at 100: when its final soak ends
          "complete": false                       # at 100 and the final soak served
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

from rollout.config import StackConfig
from rollout.plans import Plan

#: Version of the state mapping; bumped when a key changes meaning.
STATE_VERSION = 1


def format_time(value: datetime) -> str:
    """A UTC timestamp as the stack files write it: ``2026-11-18T09:00:00Z``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime:
    """Parse an ISO 8601 timestamp with a zone (``Z`` or an offset) into UTC.

    Raises ValueError for anything else, including a timestamp without a zone.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a timestamp")
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return value.astimezone(timezone.utc)


def utc_now() -> datetime:
    """The current time in UTC, to the second (the precision of the history)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def _stage_list(plan: Plan) -> list[dict[str, int]]:
    return [{"weight": s.weight, "soakSeconds": int(s.soak.total_seconds())} for s in plan.stages]


def service_state(
    name: str,
    plan_name: str,
    stages: Iterable[Mapping[str, Any]],
    history: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The state of one service from its plan's stages and its history.

    ``stages`` are ``{"weight", "soakSeconds"}`` mappings, ``history`` entries are
    ``{"weight", "startedAt", "reason"}`` with ``startedAt`` an ISO string or a
    datetime. Derived keys (current weight, stage start, next weight, earliest
    advance, completion) are computed here so that every producer of a state
    agrees on them.
    """
    stages = [{"weight": int(s["weight"]), "soakSeconds": int(s["soakSeconds"])} for s in stages]
    entries = []
    for entry in history:
        started = entry["startedAt"]
        started = started if isinstance(started, datetime) else parse_time(started)
        entries.append(
            {"weight": int(entry["weight"]), "startedAt": format_time(started), "reason": entry.get("reason")}
        )
    if not entries:
        raise ValueError(f"service {name}: the rollout history is empty")
    current = entries[-1]
    weight = current["weight"]
    started_at = parse_time(current["startedAt"])
    weights = [s["weight"] for s in stages]
    soak = next((s["soakSeconds"] for s in stages if s["weight"] == weight), None)
    index = weights.index(weight) if weight in weights else None
    next_weight = weights[index + 1] if index is not None and index + 1 < len(weights) else None
    soak_end = format_time(started_at + timedelta(seconds=soak)) if soak is not None else None
    final = index is not None and index == len(weights) - 1
    now = now or utc_now()
    return {
        "name": name,
        "plan": plan_name,
        "stages": stages,
        "history": entries,
        "weight": weight,
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
        services[service.name] = service_state(
            service.name,
            settings.plan,
            _stage_list(settings.plan_model),
            [
                {"weight": e.weight, "startedAt": e.started_at, "reason": e.reason}
                for e in settings.history
            ],
            now,
        )
    return {
        "version": STATE_VERSION,
        "stack": stack,
        "tier": config.tier,
        "promotesFrom": config.promotes_from,
        "canary": {
            "maxErrorRatio": canary.max_error_ratio,
            "maxLatencyP95Seconds": canary.max_latency_p95_seconds,
            "maxLatencyP99Seconds": canary.max_latency_p99_seconds,
            "maxConsecutiveFailedHealthChecks": canary.max_consecutive_failed_health_checks,
            "minRequests": canary.min_requests,
            "evidenceMaxAgeSeconds": int(canary.evidence_max_age.total_seconds()),
        },
        "safetyFlagsOn": sorted(config.safety_flags_on()),
        "services": services,
    }


def with_entry(
    state: Mapping[str, Any],
    service: str,
    weight: int,
    started_at: datetime,
    reason: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A copy of ``state`` with one history entry appended to ``service``.

    This is what ``rollout advance`` and ``rollout rollback`` are about to write,
    so the gates can judge it before the stack file changes.
    """
    current = state["services"][service]
    history = [*current["history"], {"weight": weight, "startedAt": started_at, "reason": reason}]
    services = dict(state["services"])
    services[service] = service_state(service, current["plan"], current["stages"], history, now)
    return {**state, "services": services}


def stage_soak(service: Mapping[str, Any], weight: int) -> timedelta | None:
    """The minimum soak of the stage at ``weight`` in this service's plan (None: not a stage)."""
    for stage in service.get("stages") or ():
        if stage.get("weight") == weight:
            return timedelta(seconds=stage["soakSeconds"])
    return None


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

    @property
    def soak_served(self) -> bool:
        return self.soak is not None and self.time_in_stage >= self.soak


def status(state_for_service: Mapping[str, Any], now: datetime) -> Status:
    """The status of one service (an entry of ``state["services"]``) at ``now``."""
    weights = [s["weight"] for s in state_for_service["stages"]]
    weight = state_for_service["weight"]
    started = parse_time(state_for_service["stageStartedAt"])
    soak = stage_soak(state_for_service, weight)
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
    )
