"""The transition the gates judge inside the policy pack: from the ``rollout-state`` stash and the policy config.

CrossGuard hands resource inputs and policy config over as protobuf Structs;
:func:`whole_numbers` makes their integral doubles ints again, and
:func:`gate_transition` builds the one :class:`~rollout.model.transition.Transition`
the gates take (policies/rules.py runs them per policy).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

from policies.staged import GATE_KEYS, staged_config

from rollout.gates.deployed import resolve_deployed
from rollout.gates.fleetread import FleetReader
from rollout.gates.judge import judge
from rollout.load.stack import project_root
from rollout.model.stored import transition_from_json, upstream_names
from rollout.model.transition import Transition


def whole_numbers(value: Any) -> Any:
    """``value`` with every integral float made an int again.

    CrossGuard hands resource inputs and policy config over as protobuf Structs,
    whose only number is a double: a weight of 10 arrives as 10.0, and the gates
    rightly refuse a stored state whose weights are not integers.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: whole_numbers(v) for k, v in value.items()}
    if _is_list(value):
        return [whole_numbers(v) for v in value]
    return value


def _is_list(value: Any) -> bool:
    # CrossGuard wraps lists in a Sequence proxy that is no list or tuple.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _config(context: Any) -> dict:
    """The gates' policy config with every state's numbers whole again (see :func:`whole_numbers`)."""
    config = dict(context.config or {})
    for key in ("deployedState", "upstreamState", "upstreamStates", "fleet"):
        config[key] = whole_numbers(config.get(key))
    evidence = config.get("evidence")
    if isinstance(evidence, Mapping):
        # The states inside the evidence came through the same Struct.
        config["evidence"] = {k: whole_numbers(v) if k in ("deployedState", "upstreamState") else v
                              for k, v in evidence.items()}
    return config


def gate_transition(state: Mapping[str, Any], context: Any) -> Transition:
    """The transition the gates judge in the pack, from the stash and the policy config.

    The config is written by ``python -m policies.pack`` (rollout.gates.deployed
    decides what is deployed, as for ``rollout check``): ``deployedState`` and
    its ``deployedStateSource`` (a source without a state: never deployed),
    ``upstreamState``, ``evidence``, ``changedFiles``. Without any of it the pack
    asks the same function, without the backend: the stack file at HEAD, else never deployed.
    """
    config = _config(context)
    if not any(key in config for key in GATE_KEYS):
        # A plain `pulumi preview --policy-pack policies`: what `rollout stage` staged, when it is current.
        staged = staged_config(project_root(), str(state.get("stack")))
        if staged is not None:
            config = _config(SimpleNamespace(config=staged))
    evidence = config.get("evidence")
    deployed, upstream = config.get("deployedState"), config.get("upstreamState")
    if evidence is None and deployed is None and "deployedStateSource" not in config:
        deployed = resolve_deployed(str(state.get("stack")), project_root(), now=context.now, backend=False).raw
    if isinstance(evidence, Mapping):
        deployed = evidence.get("deployedState")
        upstream = evidence.get("upstreamState") or upstream
    names = list(dict.fromkeys((*upstream_names(deployed.get("promotesFrom") if isinstance(deployed, Mapping)
                                                else None), *upstream_names(state.get("promotesFrom")))))
    upstreams, fleet = config.get("upstreamStates"), config.get("fleet")
    if names and "upstreamStateSource" not in config and (upstream is None or len(names) > 1) and not upstreams:
        # No config from `python -m policies.pack`: the same resolution, without the backend.
        reader = FleetReader(project_root(), context.now, backend=False)
        upstreams = {name: reader.upstream(name).raw for name in names}
        upstream = upstream if upstream is not None else upstreams[names[0]]
    if fleet is None and "deployedStateSource" not in config:
        fleet = FleetReader(project_root(), context.now, backend=False).view(
            str(state.get("stack")), deployed if isinstance(deployed, Mapping) else None, state)
    changed = config.get("changedFiles")
    changed = [str(path) for path in changed] if _is_list(changed) else None
    return transition_from_json(state, deployed, evidence, upstream, context.now, changed,
                                deployed_from_evidence=False,
                                upstreams=upstreams if isinstance(upstreams, Mapping) and len(names) > 1 else None,
                                fleet=fleet if isinstance(fleet, Mapping) else None)


def _once(context: Any, kind: str, state: Mapping[str, Any], make: Callable[[], Any]) -> Any:
    """``make()``, once per stash and config within a run of the pack (``context.memo``, shared by the
    policies of one AnalyzeStack: policies/pack.py); every time without a memo."""
    if context.memo is None:
        return make()
    key = kind + json.dumps([state, whole_numbers(dict(context.config or {}))], sort_keys=True, default=repr)
    if key not in context.memo:
        context.memo[key] = make()
    return context.memo[key]


def shared_transition(state: Mapping[str, Any], context: Any) -> Transition:
    """The transition the gates judge, built once per stash and config within a run."""
    return _once(context, "transition", state, lambda: gate_transition(state, context))


def judged(state: Mapping[str, Any], context: Any) -> list:
    """Every gate's violations over the transition, judged once per stash and config within a run."""
    return _once(context, "judged", state, lambda: judge(shared_transition(state, context)))


__all__ = ["gate_transition", "judged", "shared_transition", "whole_numbers"]
