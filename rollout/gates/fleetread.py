"""The other stacks a judgement reads, each read once per command.

A :class:`FleetReader` lives for one command run. It reads the fleet's graph
from the stack files once (:func:`rollout.load.fleet.read_fleet`), and each
stack's config, working-tree state and deployed state at most once, whichever
stack, service or gate asks for it. So ``rollout status --all`` over S stacks
of N services reads S stack files, not S × N, and ``rollout check`` of one stack
reads that stack, its upstreams (followed to the roots) and the stacks of its
fleet-limit group, whatever the fleet's size.

What is deployed of another stack is decided as for the stack itself
(:func:`rollout.gates.deployed.resolve_deployed`: the backend, else the git
base, else never deployed), or, for ``status`` and ``plan``
(``deployed_from_files``), the stack file in the working tree.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.gates.deployed import Resolved, resolve_deployed
from rollout.load.fleet import Fleet, read_fleet
from rollout.load.stack import load_stack, shown_stack_file
from rollout.model.config import StackConfig
from rollout.model.errors import ConfigError, UsageError
from rollout.model.state import as_at, rollout_state
from rollout.model.stored import Unreadable, parse_state, upstream_names
from rollout.model.transition import FleetView, UpstreamState


class FleetReader:
    """Each stack's config and states, read once per command run."""

    def __init__(self, project: Path, now: datetime, *, base: str | None = None, backend: bool | None = None,
                 deployed_from_files: bool = False) -> None:
        self.project, self.now, self.base, self.backend = project, now, base, backend
        self.deployed_from_files = deployed_from_files
        self._fleet: Fleet | None = None
        self._configs: dict[str, StackConfig | ConfigError | UsageError] = {}
        self._states: dict[str, dict[str, Any] | None] = {}
        self._deployed: dict[str, Resolved] = {}
        self._parsed: dict[str, UpstreamState | None] = {}
        self._views: dict[str, FleetView] = {}
        #: How many times each stack file was loaded and each deployed state resolved (the benchmark reads it).
        self.reads = {"configs": 0, "deployed": 0}

    # --- the files -------------------------------------------------------------------------

    @property
    def fleet(self) -> Fleet:
        if self._fleet is None:
            self._fleet = read_fleet(self.project, strict=False)
        return self._fleet

    def config(self, stack: str) -> StackConfig:
        """The stack's validated config (ConfigError, raised again on every ask, when it does not load)."""
        if stack not in self._configs:
            self.reads["configs"] += 1
            try:
                self._configs[stack] = load_stack(stack, self.project)
            except (ConfigError, UsageError) as err:
                self._configs[stack] = err
        found = self._configs[stack]
        if isinstance(found, (ConfigError, UsageError)):
            raise found
        return found

    def working_state(self, stack: str) -> dict[str, Any] | None:
        """The rollout state of the stack file in the working tree; None when it does not load."""
        if stack not in self._states:
            try:
                self._states[stack] = rollout_state(self.config(stack), stack, self.now)
            except (ConfigError, UsageError):
                self._states[stack] = None
        return self._states[stack]

    # --- what is deployed -----------------------------------------------------------------

    def deployed(self, stack: str) -> Resolved:
        """What is deployed of ``stack`` (the backend, else the git base, else never; or the working tree)."""
        if stack not in self._deployed:
            self.reads["deployed"] += 1
            if self.deployed_from_files:
                state = self.working_state(stack)
                self._deployed[stack] = Resolved(state, f"{shown_stack_file(stack)} in the working tree")
            else:
                self._deployed[stack] = resolve_deployed(stack, self.project, base=self.base, now=self.now,
                                                         backend=self.backend)
        return self._deployed[stack]

    def upstream(self, stack: str) -> Resolved:
        """An upstream's state: what is deployed of it, else its stack file in the working tree."""
        resolved = self.deployed(stack)
        # As the upstream stood at ``now``: a rehearsal (--now) never sees its later entries.
        if resolved.raw is not None:
            return Resolved(as_at(resolved.raw, self.now), resolved.source, resolved.notes)
        state = self.working_state(stack)
        if state is None:
            return Resolved(None, "none", (*resolved.notes, f"no state of {stack}: its stack file does not load"))
        return Resolved(as_at(state, self.now), f"{shown_stack_file(stack)} in the working tree", resolved.notes)

    # --- parsed once ------------------------------------------------------------------------

    def parsed_upstream(self, stack: str) -> UpstreamState | None:
        """:meth:`upstream`'s state, parsed once (None when there is none or it cannot be read)."""
        if stack not in self._parsed:
            raw = self.upstream(stack).raw
            try:
                self._parsed[stack] = parse_state(raw, UpstreamState) if raw is not None else None
            except Unreadable:
                self._parsed[stack] = None
        return self._parsed[stack]

    def working_view(self, stack: str) -> FleetView:
        """The fleet's view of ``stack`` with its stack file as deployed and proposed (``status``, ``plan``),
        built once per stack, whichever of its services asks; each other stack's state parsed once per command."""
        if stack not in self._views:
            state = self.working_state(stack) or {"services": {}}
            raw = self.view(stack, state, state)
            parsed = {name: self.parsed_upstream(name) for name in raw["states"]}
            self._views[stack] = FleetView(
                ancestors=tuple(raw["ancestors"]),
                groups={g: tuple(m) for g, m in raw["groups"].items()},
                states={n: p for n, p in parsed.items() if p is not None},
                # From the files, deployed and proposed are one: the same parsed states.
                proposed={n: parsed[n] for n in raw["proposed"] if parsed.get(n) is not None},
                problems={**raw["problems"],
                          **{n: "the stored state cannot be read" for n, p in parsed.items() if p is None}},
            )
        return self._views[stack]

    # --- the view the fleet gates take -----------------------------------------------------

    def view(self, stack: str, deployed: dict[str, Any] | None, proposed: dict[str, Any]) -> dict[str, Any]:
        """The fleet's JSON form for ``stack`` (:func:`rollout.model.stored.parse_fleet`): its ancestors, the
        stacks of its fleet-limit groups, and each of those stacks' deployed state (and, for the group's
        stacks, the state their files propose: a change that starts two of them at once counts both)."""
        graph = self.fleet.graph
        ancestors: list[str] = []
        queue = list(dict.fromkeys((*upstream_names((deployed or {}).get("promotesFrom")),
                                    *upstream_names(proposed.get("promotesFrom")))))
        states: dict[str, Any] = {}
        problems: dict[str, str] = {}
        while queue:
            name = queue.pop(0)
            if name in ancestors or name == stack:
                continue
            ancestors.append(name)
            resolved = self.upstream(name)
            if resolved.raw is None:
                problems[name] = f"no state of {name}"
            else:
                states[name] = resolved.raw
            queue += [*upstream_names((resolved.raw or {}).get("promotesFrom")), *graph.upstreams.get(name, ())]
        groups: dict[str, list[str]] = {}
        proposals: dict[str, Any] = {}
        for side in (deployed, proposed):
            group = ((side or {}).get("fleet") or {}).get("group")
            if not isinstance(group, str) or group in groups:
                continue
            groups[group] = [m for m in graph.members(group) if m != stack]
            for member in groups[group]:
                resolved = self.deployed(member)
                if resolved.raw is not None:
                    states.setdefault(member, resolved.raw)
                proposal = self.working_state(member)
                if proposal is not None:
                    proposals[member] = proposal
        return {"ancestors": ancestors, "groups": groups, "states": states, "problems": problems,
                "proposed": proposals}


__all__ = ["FleetReader"]
