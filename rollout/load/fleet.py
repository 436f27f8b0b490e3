"""The fleet, found from the files: every ``stacks/Pulumi.<stack>.yaml`` and the graph their
``promotesFrom`` keys make.

Adding a stack file is all it takes for a stack to join: ``rollout stacks`` lists
it (in promotion order, with its wave) for the workflows' generated matrices,
and ``rollout status --all`` shows it. Only ``promotesFrom`` and ``fleet`` are
read here (each file once); a stack file that does not load is listed as broken
and joins no edge. A ``promotesFrom`` naming a stack without a file, or a
cycle, is bad input (exit 2) naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rollout.load.secrets import NS
from rollout.load.stack import read_stack_file, shown_stack_file, stack_file, stack_names
from rollout.model.errors import ConfigError
from rollout.model.fleet import Graph, variable_key


@dataclass(frozen=True)
class Fleet:
    """The graph of the project's stacks, and the stack files that could not be read."""

    graph: Graph
    broken: dict[str, list[str]] = field(default_factory=dict)
    #: Each stack's ``tier`` and ``target`` as written (the workflows pick their steps by them).
    facts: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def entry(self, stack: str) -> dict:
        """One stack as the workflows' generated matrix holds it."""
        facts = self.facts.get(stack, {})
        return {"stack": stack, "wave": self.graph.waves()[stack], "key": variable_key(stack),
                "tier": facts.get("tier"), "target": facts.get("target")}

    def as_json(self) -> dict:
        return {
            "stacks": [
                {**self.entry(s), "promotesFrom": list(self.graph.upstreams[s]), "group": self.graph.groups.get(s)}
                for s in self.graph.order()
            ],
            "waves": self.graph.by_wave(),
            "broken": self.broken,
        }


def _names(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def read_fleet(project: Path, *, strict: bool = True) -> Fleet:
    """The project's fleet. ``strict``: an unknown stack or a cycle raises ConfigError (exit 2) naming
    the file and ``rollout:promotesFrom``; otherwise the stacks involved are listed as broken."""
    upstreams: dict[str, tuple[str, ...]] = {}
    groups: dict[str, str | None] = {}
    broken: dict[str, list[str]] = {}
    facts: dict[str, dict[str, str | None]] = {}
    for stack in stack_names(project):
        try:
            raw = read_stack_file(stack_file(stack, project), project)
        except ConfigError as err:
            broken[stack] = err.problems
            upstreams[stack] = ()
            continue
        upstreams[stack] = _names(raw.get("promotesFrom"))
        facts[stack] = {key: raw.get(key) if isinstance(raw.get(key), str) else None for key in ("tier", "target")}
        fleet = raw.get("fleet")
        groups[stack] = fleet.get("group") if isinstance(fleet, dict) and isinstance(fleet.get("group"), str) else None
    graph = Graph(upstreams, groups)
    problems = [f"{shown_stack_file(stack)}: {NS}:promotesFrom: {name!r} is not a stack: there is no "
                f"{shown_stack_file(name)}; stacks: {', '.join(graph.stacks)}" for stack, name in graph.unknown()]
    cycle = graph.cycle()
    if cycle:
        problems.append(f"{shown_stack_file(cycle[0])}: {NS}:promotesFrom: makes a cycle "
                        f"({' → '.join(cycle)}, each promoting from the next); the fleet's graph must have none")
    if problems and strict:
        raise ConfigError(problems)
    if problems:
        for line in problems:
            broken.setdefault(line.split(":", 1)[0].removeprefix("stacks/Pulumi.").removesuffix(".yaml"), []).append(line)
        cut = {s: tuple(u for u in ups if u in upstreams and s not in (cycle or ())) for s, ups in upstreams.items()}
        graph = Graph(cut, groups)
    return Fleet(graph, broken, facts)


__all__ = ["Fleet", "read_fleet"]
