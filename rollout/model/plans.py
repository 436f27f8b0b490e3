"""Rollout plans: ordered traffic weights for the canary, each with a minimum soak.

The built-in plans come from the rollout specification:

- ``safe``: 0 → 5 → 10 → 25 → 50 → 75 → 100, one day per stage, and the rollout
  counts as complete after 48 h at 100 %.
- ``fast``: the same stages over three days in all: six stages of 10 h, then
  12 h at 100 % before complete (72 h).
- ``instant``: 0 → 100 with a one-minute soak.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

#: The stage weights of the built-in progressive plans, in percent of traffic.
STANDARD_WEIGHTS = (0, 5, 10, 25, 50, 75, 100)


@dataclass(frozen=True)
class Stage:
    """One step of a plan: the canary's traffic weight and its minimum soak."""

    weight: int
    soak: timedelta


@dataclass(frozen=True)
class Plan:
    """An ordered list of stages; the last one is 100 %."""

    name: str
    stages: tuple[Stage, ...]

    @property
    def weights(self) -> tuple[int, ...]:
        return tuple(stage.weight for stage in self.stages)

    def stage_of(self, weight: int) -> Stage | None:
        """The stage at this weight, or None when the plan has no such stage."""
        for stage in self.stages:
            if stage.weight == weight:
                return stage
        return None

    def next_weight(self, weight: int) -> int | None:
        """The weight of the stage after ``weight``; None at the end or off-plan."""
        weights = self.weights
        if weight not in weights:
            return None
        index = weights.index(weight)
        return weights[index + 1] if index + 1 < len(weights) else None

    @property
    def total_soak(self) -> timedelta:
        return sum((stage.soak for stage in self.stages), timedelta())


def _uniform(name: str, soak: timedelta, final_soak: timedelta) -> Plan:
    stages = [Stage(w, soak) for w in STANDARD_WEIGHTS[:-1]]
    stages.append(Stage(100, final_soak))
    return Plan(name, tuple(stages))


BUILTIN_PLANS: dict[str, Plan] = {
    # One stage a day for six stages, then 48 h at 100 % before "complete".
    "safe": _uniform("safe", timedelta(days=1), timedelta(hours=48)),
    # Three days in all: six stages of 10 h, then 12 h at 100 % (6 × 10 + 12 = 72 h).
    "fast": _uniform("fast", timedelta(hours=10), timedelta(hours=12)),
    "instant": Plan("instant", (Stage(0, timedelta(minutes=1)), Stage(100, timedelta(minutes=1)))),
}
