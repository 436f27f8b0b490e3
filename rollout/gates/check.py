"""The gate half of ``rollout check`` (and of ``rollout advance``).

Resolves what the gates compare: the proposed state (the stack file in the
working tree), the deployed state (the evidence's ``deployedState``; without
evidence, :func:`rollout.gates.deployed.resolve_deployed`: the backend's last
applied state, else the stack file at a git base, else never deployed), the
upstream state of the stack the deployed state (or, never deployed, the
proposal) promotes from, and the files the change touches. Then it builds one
:class:`~rollout.model.transition.Transition`, runs
:func:`rollout.gates.judge.judge` and reports, with each loosening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.gates.deployed import (  # noqa: F401 - re-exported: the CLI and the tests import them from here
    DEFAULT_BASE,
    STATE_OUTPUT,
    NoGitBase,
    changed_files,
    config_at_ref,
    read_state_file,
    resolve_deployed,
    resolve_upstream,
    state_at_ref,
)
from rollout.gates.fleet import overrides_in_effect
from rollout.gates.fleetread import FleetReader
from rollout.gates.judge import GateViolation, advancing_services, judge, loosenings
from rollout.load.files import read_json_file
from rollout.load.stack import load_stack
from rollout.model.config import StackConfig
from rollout.model.errors import UsageError
from rollout.model.state import as_at, rollout_state
from rollout.model.stored import transition_from_json, upstream_names
from rollout.model.time import utc_now
from rollout.model.transition import Transition


@dataclass
class GateReport:
    """What the gates decided for one stack, and what they compared."""

    stack: str
    violations: list[GateViolation]
    #: Services whose weight goes up from the deployed state (the judged ones).
    advancing: list[str]
    #: Where the deployed state came from, for the output ("the backend (...)", "stacks/... at HEAD", ...).
    deployed_source: str
    upstream_source: str | None = None
    #: Remarks worth printing (e.g. no git base available).
    notes: list[str] = field(default_factory=list)
    #: Each safety setting the change loosens ("promotesFrom staging → none").
    loosens: list[str] = field(default_factory=list)
    #: The deployed state's tier (the resource policies take the stricter of it and the proposal's).
    deployed_tier: str | None = None
    #: Each emergency override of the freeze windows in effect ("genesis: by alice ... until ...: why").
    overrides: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.violations)


def format_violation(violation: GateViolation) -> str:
    """One line per violation: ``[mandatory] <policy> (service <name>): <message>``."""
    return f"[mandatory] {violation.policy} (service {violation.service}): {violation.message}"


def load_evidence(path: Path) -> dict[str, Any]:
    """Read a ``rollout evidence`` file; a missing or non-JSON file is bad input (exit 2).

    Its content is judged by the gates: evidence that lacks what they need refuses
    the advance rather than failing here, exactly as in the policy pack.
    """
    data = read_json_file(path, "--evidence")
    if not isinstance(data, dict):
        raise UsageError(f"--evidence {path}: must be a JSON object, as `rollout evidence` writes")
    return data


@dataclass(frozen=True)
class Judged:
    """The transition of a stack and where each of its parts came from."""

    transition: Transition
    deployed_source: str
    upstream_source: str | None
    notes: list[str]
    #: The JSON forms, as the policy pack's config carries them.
    deployed_raw: dict[str, Any] | None
    upstream_raw: dict[str, Any] | None
    #: Every upstream's state by name (``promotesFrom`` naming several) and the fleet's view.
    upstreams_raw: dict[str, Any] = field(default_factory=dict)
    fleet_raw: dict[str, Any] | None = None


def stack_transition(
    stack: str,
    project: Path,
    *,
    evidence: dict[str, Any] | None = None,
    base: str | None = None,
    now: datetime | None = None,
    config: StackConfig | None = None,
    new_state: dict[str, Any] | None = None,
    deployed_file: Path | None = None,
    upstream_file: Path | None = None,
    backend: bool | None = None,
    reader: FleetReader | None = None,
) -> Judged:
    """The one transition ``rollout check``, ``advance`` and ``python -m policies.pack`` judge.

    ``reader`` (one per command run) reads the other stacks once: the upstreams, every
    stack upstream of them, the stacks of the fleet-limit group.
    """
    now = now or utc_now()
    reader = reader or FleetReader(project, now, base=base, backend=backend)
    if new_state is None:
        config = config or load_stack(stack, project)
        new_state = rollout_state(config, stack, now)
    notes: list[str] = []
    upstream_raw = upstream_source = None
    if evidence is not None:
        deployed_raw = evidence.get("deployedState")
        deployed_source = f"the evidence ({evidence.get('deployedStateSource') or 'deployedState'})"
        if evidence.get("upstreamState") is not None:
            upstream_raw = evidence.get("upstreamState")
            upstream_source = f"the evidence ({evidence.get('upstreamStateSource') or 'upstreamState'})"
    else:
        resolved = resolve_deployed(stack, project, state_file=deployed_file, base=base, now=now, backend=backend)
        deployed_raw, deployed_source = resolved.raw, resolved.source
        notes += resolved.notes
    # The upstreams the deployed state names and any the proposal adds: deleting one loosens nothing yet.
    names = list(dict.fromkeys((*upstream_names(deployed_raw.get("promotesFrom") if isinstance(deployed_raw, dict)
                                                else None), *upstream_names(new_state.get("promotesFrom")))))
    upstreams_raw: dict[str, Any] = {}
    if len(names) > 1 and isinstance(evidence, dict) and isinstance(evidence.get("upstreamStates"), dict):
        upstreams_raw = dict(evidence["upstreamStates"])
    for index, name in enumerate(names):
        if index == 0 and upstream_raw is not None:
            upstreams_raw.setdefault(name, upstream_raw)
            continue
        if name in upstreams_raw:
            continue
        if index == 0 and upstream_file is not None:
            found = resolve_upstream(name, project, state_file=upstream_file, base=base, now=now, backend=backend)
        else:
            found = reader.upstream(name)
        upstreams_raw[name] = found.raw
        notes += found.notes
        if index == 0:
            upstream_raw, upstream_source = found.raw, found.source
        else:
            upstream_source = f"{upstream_source}; {name}: {found.source}"
    fleet_raw = reader.view(stack, deployed_raw if isinstance(deployed_raw, dict) else None, new_state)
    # At --now (a rehearsal), each upstream as it had progressed by then, never its later entries.
    upstream_raw = as_at(upstream_raw, now)
    upstreams_raw = {name: as_at(raw, now) for name, raw in upstreams_raw.items()}
    changed = None
    try:
        changed = changed_files(project, base or DEFAULT_BASE)
    except NoGitBase:
        pass
    transition = transition_from_json(new_state, deployed_raw, evidence, upstream_raw, now, changed,
                                      deployed_from_evidence=False,
                                      upstreams=upstreams_raw if len(names) > 1 else None, fleet=fleet_raw)
    return Judged(transition, deployed_source, upstream_source, notes, deployed_raw, upstream_raw,
                  upstreams_raw if len(names) > 1 else {}, fleet_raw)


def gate_report(stack: str, project: Path, **options: Any) -> GateReport:
    """Run the gates for ``stack`` of ``project`` (options: those of :func:`stack_transition`).

    ``new_state`` overrides the working tree's state (``rollout advance`` judges
    the state it is about to write).
    """
    judged = stack_transition(stack, project, **options)
    t = judged.transition
    return GateReport(
        stack=stack,
        violations=judge(t),
        advancing=advancing_services(t),
        deployed_source=judged.deployed_source,
        upstream_source=judged.upstream_source,
        notes=judged.notes,
        loosens=loosenings(t),
        deployed_tier=t.deployed.tier if t.deployed is not None else None,
        overrides=overrides_in_effect(t),
    )


def working_tree_state(stack: str, project: Path, now: datetime | None = None) -> dict[str, Any]:
    """The rollout state of the stack file in the working tree (validated with its upstream)."""
    return rollout_state(load_stack(stack, project), stack, now)


__all__ = [
    "DEFAULT_BASE",
    "GateReport",
    "Judged",
    "NoGitBase",
    "config_at_ref",
    "format_violation",
    "gate_report",
    "load_evidence",
    "read_state_file",
    "stack_transition",
    "state_at_ref",
    "working_tree_state",
]
