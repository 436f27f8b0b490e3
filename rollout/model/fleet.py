"""The fleet as a graph: each stack, the stacks it promotes from, its fleet-limit group.

Pure rules over names; :mod:`rollout.load.fleet` reads the graph from the stack
files. A stack's **wave** is its depth: 0 for a stack that promotes from none,
else one more than the deepest stack it promotes from. The **promotion order**
lists the stacks wave by wave, by name within a wave, so every stack comes after
each stack it promotes from (the order the workflows deploy in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Graph:
    """The stacks, the stacks each promotes from, and the fleet-limit group each names."""

    upstreams: dict[str, tuple[str, ...]]
    groups: dict[str, str | None] = field(default_factory=dict)

    @property
    def stacks(self) -> list[str]:
        return sorted(self.upstreams)

    def unknown(self) -> list[tuple[str, str]]:
        """Each (stack, name) where a stack promotes from a stack that has no file."""
        return [(stack, name) for stack in self.stacks for name in self.upstreams[stack] if name not in self.upstreams]

    def cycle(self) -> list[str] | None:
        """A cycle of ``promotesFrom`` as the stacks along it (first repeated last); None when there is none."""
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(stack: str) -> list[str] | None:
            state[stack] = 1
            path.append(stack)
            for name in self.upstreams.get(stack, ()):
                if name not in self.upstreams:
                    continue
                if state.get(name) == 1:
                    return path[path.index(name):] + [name]
                if name not in state:
                    found = visit(name)
                    if found:
                        return found
            state[stack] = 2
            path.pop()
            return None

        for stack in self.stacks:
            if stack not in state:
                found = visit(stack)
                if found:
                    return found
        return None

    def waves(self) -> dict[str, int]:
        """Each stack's wave (its depth in the graph). The graph must have no cycle."""
        found: dict[str, int] = {}

        def wave(stack: str) -> int:
            if stack not in found:
                known = [u for u in self.upstreams.get(stack, ()) if u in self.upstreams]
                found[stack] = 1 + max(map(wave, known)) if known else 0
            return found[stack]

        for stack in self.stacks:
            wave(stack)
        return found

    def order(self) -> list[str]:
        """Every stack in promotion order: by wave, then by name."""
        waves = self.waves()
        return sorted(self.stacks, key=lambda s: (waves[s], s))

    def by_wave(self) -> list[list[str]]:
        waves = self.waves()
        return [[s for s in self.order() if waves[s] == n] for n in range(max(waves.values(), default=-1) + 1)]

    def ancestors(self, stack: str) -> list[str]:
        """Every stack upstream of ``stack``, nearest first."""
        seen: list[str] = []
        queue = list(self.upstreams.get(stack, ()))
        while queue:
            name = queue.pop(0)
            if name in seen or name == stack:
                continue
            seen.append(name)
            queue += list(self.upstreams.get(name, ()))
        return seen

    def descendants(self, stack: str) -> list[str]:
        """Every stack downstream of ``stack``, in promotion order."""
        return [s for s in self.order() if stack in self.ancestors(s)]

    def members(self, group: str) -> list[str]:
        """The stacks of a fleet-limit group, by name."""
        return sorted(s for s, g in self.groups.items() if g == group)


def variable_key(stack: str) -> str:
    """A stack's name as a CI variable suffix: upper case, every other character than a letter or digit ``_``
    (``prod-eu`` → ``PROD_EU``: ``PROMETHEUS_URL_PROD_EU``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", stack).upper()


__all__ = ["Graph", "variable_key"]
