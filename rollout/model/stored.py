"""Parse the stored JSON forms into the typed models of :mod:`rollout.model.transition`.

A rollout state arrives as JSON (the ``rolloutState`` stack output, the
``rollout-state`` stash a policy pack sees, a state written into evidence) or is
built from a stack file (:func:`rollout.model.state.rollout_state`); evidence
arrives as ``rollout evidence``'s file. Each is parsed here once:

- a state that cannot be judged raises :class:`Unreadable` naming what is wrong
  (as a predicate: "services.genesis has no weight"), so the caller decides
  whether that is bad input (a file named on the command line) or a refusal
  (a stored state, where nothing above 0 % can then be judged);
- evidence never fails to parse: what it lacks is recorded as missing, and the
  gate that needs it refuses the advance (exactly as in the policy pack).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence, TypeVar

from rollout.model.time import parse_time
from rollout.model.transition import (
    THRESHOLDS,
    DeployedState,
    Entry,
    Evidence,
    FleetView,
    Freeze,
    FreezeWindow,
    LiveRoute,
    Measure,
    ProposedState,
    Route,
    Service,
    ServiceEvidence,
    Stage,
    StackState,
    Thresholds,
    Transition,
    UpstreamState,
)

State = TypeVar("State", bound=StackState)
ENTRY_KEYS = ("weight", "startedAt", "release", "plan", "reason", "kind", "by", "until")


class Unreadable(ValueError):
    """A stored state that cannot be judged; the message is a predicate on what is wrong."""


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list | None:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return parse_time(value)
    except (ValueError, TypeError):
        return None


def _entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, Mapping) or not _int(raw.get("weight")):
        raise Unreadable(f"{where} has no weight")
    started = _time(raw.get("startedAt"))
    if started is None:
        raise Unreadable(f"{where} has no readable startedAt")
    kind = raw.get("kind") or "stage"
    if kind not in ("stage", "override", "resume"):
        raise Unreadable(f"{where} has kind {str(kind)[:40]!r}, not stage, override or resume")
    until = _time(raw.get("until")) if raw.get("until") is not None else None
    if kind == "override" and until is None:
        raise Unreadable(f"{where} is an override without a readable until")
    return Entry(
        weight=raw["weight"], started_at=started, release=_text(raw.get("release")), plan=_text(raw.get("plan")),
        reason=_text(raw.get("reason")), kind=kind, by=_text(raw.get("by")), until=until,
        recorded=tuple(k for k in ENTRY_KEYS if k in raw),
    )


def _route(raw: Any) -> Route | None:
    if not isinstance(raw, Mapping):
        return None
    hostnames, matches = _list(raw.get("hostnames")), _list(raw.get("matches"))
    if hostnames is None or matches is None or not all(isinstance(h, str) for h in hostnames):
        return None
    return Route(hostnames=tuple(hostnames),
                 matches=tuple(json.dumps(m, sort_keys=True, default=str) for m in matches))


def parse_service(name: str, raw: Any) -> Service:
    """One service of a stored state; :class:`Unreadable` names what cannot be judged."""
    if not isinstance(raw, Mapping):
        raise Unreadable("is not an object")
    if not _int(raw.get("weight")):
        raise Unreadable("has no weight")
    started = _time(raw.get("stageStartedAt"))
    if started is None:
        raise Unreadable("has no readable stageStartedAt")
    stages = _list(raw.get("stages"))
    if stages is None or not all(
        isinstance(s, Mapping) and _int(s.get("weight")) and _int(s.get("soakSeconds")) for s in stages
    ):
        raise Unreadable("has no readable stages")
    history_raw = _list(raw.get("history"))
    if not history_raw:
        raise Unreadable("has no readable history")
    history = tuple(_entry(e, f"has a history[{i}] that") for i, e in enumerate(history_raw))
    canary = raw.get("canary") if isinstance(raw.get("canary"), Mapping) else {}
    stable = raw.get("stable") if isinstance(raw.get("stable"), Mapping) else {}
    soak = raw.get("stageSoakSeconds")
    return Service(
        name=str(raw.get("name") or name),
        plan=str(raw.get("plan") or ""),
        stages=tuple(Stage(weight=s["weight"], soak=timedelta(seconds=s["soakSeconds"])) for s in stages),
        history=history,
        weight=raw["weight"],
        stage_started_at=started,
        stage_soak=timedelta(seconds=soak) if _int(soak) else None,
        canary_image=_text(canary.get("image")),
        stable_image=_text(stable.get("image")),
        previous_image=_text(stable.get("previousImage")),
        records_previous_image="previousImage" in stable,
        route=_route(raw.get("route")),
    )


def _thresholds(raw: Any) -> Thresholds:
    raw = raw if isinstance(raw, Mapping) else {}
    values: dict[str, Any] = {}
    for field, (key, _) in THRESHOLDS.items():
        number = _number(raw.get(key))
        if number is not None:
            values[field] = timedelta(seconds=number) if field == "evidence_max_age" else number
    return Thresholds(**values)


def upstream_names(value: Any) -> tuple[str, ...]:
    """``promotesFrom`` as stored: a stack name, a list of them, or null."""
    if isinstance(value, str):
        return (value,)
    listed = _list(value)
    return tuple(str(v) for v in listed) if listed else ()


def _fleet_settings(raw: Any) -> tuple[str | None, int | None]:
    if not isinstance(raw, Mapping):
        return None, None
    limit = raw.get("maxInProgress")
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    return _text(raw.get("group")), limit if _int(limit) else None


def _release_groups(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(group): tuple(str(m) for m in (_list(members) or [])) for group, members in raw.items()}


def _freeze(raw: Any) -> Freeze:
    if not isinstance(raw, Mapping):
        return Freeze()
    windows = []
    for window in _list(raw.get("windows")) or []:
        if isinstance(window, Mapping) and all(isinstance(window.get(k), str) for k in ("name", "start", "end")):
            windows.append(FreezeWindow(name=window["name"], start=window["start"], end=window["end"]))
    return Freeze(time_zone=_text(raw.get("timeZone")) or "UTC", allow_override=raw.get("allowOverride") is True,
                  windows=tuple(windows))


def parse_state(raw: Any, kind: type[State]) -> State:
    """A stored rollout state as ``kind``; :class:`Unreadable` when it cannot be judged."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("services"), Mapping):
        raise Unreadable("is not a rollout state")
    services = {}
    for name, service in raw["services"].items():
        try:
            services[str(name)] = parse_service(str(name), service)
        except Unreadable as err:
            raise Unreadable(f"services.{name} {err}") from None
    flags = _list(raw.get("safetyFlagsOn")) or []
    return kind(
        stack=_text(raw.get("stack")),
        tier=_text(raw.get("tier")),
        promotes_from=upstream_names(raw.get("promotesFrom")),
        fleet_group=_fleet_settings(raw.get("fleet"))[0],
        fleet_limit=_fleet_settings(raw.get("fleet"))[1],
        release_groups=_release_groups(raw.get("releaseGroups")),
        freeze=_freeze(raw.get("freeze")),
        namespace=_text(raw.get("namespace")),
        thresholds=_thresholds(raw.get("canary")),
        safety_flags_on=tuple(sorted(str(f) for f in flags)),
        services=services,
    )


def _measure(raw: Any) -> Measure:
    if not isinstance(raw, Mapping):
        return Measure()
    status = raw.get("status")
    status = status if isinstance(status, str) else repr(status)
    value = _number(raw.get("value")) if status == "ok" else None
    detail = raw.get("detail")
    return Measure(status=status, value=value, detail=str(detail) if detail else None,
                   seconds=_number(raw.get("seconds")))


def _service_evidence(raw: Mapping[str, Any]) -> ServiceEvidence:
    weight = raw.get("stageWeight")
    if "trafficSince" not in raw:
        traffic, since = "absent", None
    elif raw.get("trafficSince") is None:
        traffic, since = "none", None
    else:
        since = _time(raw.get("trafficSince"))
        traffic = "time" if since is not None else "unreadable"
    live = raw.get("liveRoute")
    live_weight = _number(live.get("canaryWeight")) if isinstance(live, Mapping) else None
    queries = raw.get("queries") if isinstance(raw.get("queries"), Mapping) else {}
    # A number that came through a protobuf Struct (the policy pack's config) is a double.
    if isinstance(weight, float) and weight.is_integer():
        weight = int(weight)
    return ServiceEvidence(
        stage_weight=weight if _int(weight) else None,
        stage_started_at=_time(raw.get("stageStartedAt")),
        stage_weight_text=str(weight),
        stage_started_text=str(raw.get("stageStartedAt")),
        release=_text(raw.get("release")),
        records_release="release" in raw,
        traffic=traffic,
        traffic_since=since,
        traffic_text=repr(raw.get("trafficSince")),
        live_route=LiveRoute(canary_weight=live_weight, set_by_relay=bool(live.get("setByRelay")),
                             writers_known=live.get("managedFields") is not False)
        if live_weight is not None else None,
        measures={str(k): _measure(v) for k, v in queries.items()},
    )


def parse_evidence(raw: Any) -> Evidence:
    """``rollout evidence``'s document; never fails: what is missing refuses later, in the gates."""
    if not isinstance(raw, Mapping):
        return Evidence(problem="the gate evidence is not a JSON object")
    services = raw.get("services") if isinstance(raw.get("services"), Mapping) else {}
    return Evidence(
        stack=_text(raw.get("stack")),
        stack_text=repr(raw.get("stack")),
        collected_at=_time(raw.get("collectedAt")),
        services={str(k): _service_evidence(v) for k, v in services.items() if isinstance(v, Mapping)},
    )


def _stored(raw: Any, kind: type[State]) -> tuple[State | None, str | None]:
    if raw is None:
        return None, None
    if isinstance(raw, kind):
        return raw, None  # parsed once already (a command reading many stacks keeps them parsed)
    try:
        return parse_state(raw, kind), None
    except Unreadable as err:
        return None, f"the stored state {err}"


def parse_fleet(raw: Any) -> FleetView | None:
    """The fleet's JSON form (``{"ancestors", "groups", "states", "proposed", "problems"}``); None when absent."""
    if isinstance(raw, FleetView):
        return raw
    if not isinstance(raw, Mapping):
        return None
    states, problems = {}, {str(k): str(v) for k, v in (raw.get("problems") or {}).items()} \
        if isinstance(raw.get("problems"), Mapping) else {}
    for name, state in (raw.get("states") or {}).items() if isinstance(raw.get("states"), Mapping) else ():
        if state is None:
            continue
        try:
            states[str(name)] = parse_state(state, UpstreamState)
        except Unreadable as err:
            problems[str(name)] = f"the stored state {err}"
    proposed = {}
    for name, state in (raw.get("proposed") or {}).items() if isinstance(raw.get("proposed"), Mapping) else ():
        try:
            proposed[str(name)] = parse_state(state, UpstreamState)
        except Unreadable:
            pass  # the deployed state judges; a proposal that cannot be read adds nothing
    groups = raw.get("groups") if isinstance(raw.get("groups"), Mapping) else {}
    return FleetView(
        proposed=proposed,
        ancestors=tuple(str(a) for a in _list(raw.get("ancestors")) or []),
        groups={str(g): tuple(str(m) for m in _list(members) or []) for g, members in groups.items()},
        states=states,
        problems=problems,
    )


def transition_from_json(
    proposed: Mapping[str, Any],
    deployed: Mapping[str, Any] | None,
    evidence: Mapping[str, Any] | None,
    upstream: Mapping[str, Any] | None,
    now: datetime,
    changed_files: Sequence[str] | None = None,
    *,
    deployed_from_evidence: bool = True,
    upstreams: Mapping[str, Any] | None = None,
    fleet: Mapping[str, Any] | None = None,
) -> Transition:
    """The transition from JSON forms, as ``rollout check`` and the policy pack receive them.

    With evidence, "deployed" is the evidence's ``deployedState`` (its absence:
    never deployed) and the upstream its ``upstreamState`` when it has one;
    ``deployed_from_evidence`` False keeps ``deployed`` as given (a state judged
    with evidence of another stage, as the tests construct).
    """
    if evidence is not None and deployed_from_evidence:
        deployed = evidence.get("deployedState") if isinstance(evidence, Mapping) else None
        upstream = (evidence.get("upstreamState") if isinstance(evidence, Mapping) else None) or upstream
        if isinstance(evidence, Mapping) and isinstance(evidence.get("upstreamStates"), Mapping):
            upstreams = evidence["upstreamStates"]
    deployed_state, deployed_problem = _stored(deployed, DeployedState)
    upstream_state, upstream_problem = _stored(upstream, UpstreamState)
    # Several upstreams (promotesFrom a list): each by name; a missing one is a problem of its own.
    by_name, problems = {}, {}
    for name, raw in (upstreams or {}).items():
        state, problem = _stored(raw, UpstreamState)
        if state is not None:
            by_name[str(name)] = state
        elif problem is not None:
            problems[str(name)] = problem
    if upstream_state is not None and upstream_state.stack and upstream_state.stack not in by_name and upstreams:
        by_name[upstream_state.stack] = upstream_state
    return Transition(
        deployed=deployed_state,
        proposed=parse_state(proposed, ProposedState),
        upstream=upstream_state,
        upstreams=by_name,
        upstream_problems=problems,
        fleet=parse_fleet(fleet),
        evidence=None if evidence is None else parse_evidence(evidence),
        now=now,
        deployed_problem=deployed_problem,
        upstream_problem=upstream_problem,
        changed_files=None if changed_files is None else tuple(changed_files),
    )


__all__ = ["Unreadable", "parse_evidence", "parse_fleet", "parse_service", "parse_state", "transition_from_json",
           "upstream_names"]
