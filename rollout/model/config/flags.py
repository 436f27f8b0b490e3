"""The feature flags (``rollout:flags``): one model per strategy, told apart by ``strategy``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator

from rollout.model.config.fields import Duration, Model, Percentage, ServiceName, Timestamp
from rollout.model.durations import format_duration
from rollout.model.errors import KeyedError


#: A flag's key (``rollout:flags.<key>``): snake_case.
FLAG_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class FlagBase(Model):
    description: str | None = None
    """What the flag does; copied into the flag's flagd metadata."""


class AllAtOnceFlag(FlagBase):
    """On or off for everyone."""

    strategy: Literal["all_at_once"]
    """``all_at_once``: the same answer for every evaluation."""
    enabled: bool
    """On (true) or off (false)."""
    reason: str | None = None
    """Why the flag is in this state; required to switch a safety flag on."""


class PercentageFlag(FlagBase):
    """On for a stable share of targeting keys (flagd ``fractional``)."""

    strategy: Literal["percentage"]
    """``percentage``: a stable share of targeting keys."""
    percentage: Percentage
    """Share of targeting keys that get the flag, 0 to 100."""


class ProgressiveStep(Model):
    after: Duration
    """Time after the schedule's start at which this step begins."""
    percentage: Percentage
    """Share of targeting keys on from this step, 0 to 100."""


class ProgressiveFlag(FlagBase):
    """A time schedule of percentages, evaluated by flagd on ``$flagd.timestamp``."""

    strategy: Literal["progressive"]
    """``progressive``: percentages that change on a schedule."""
    start: Timestamp
    """When the schedule begins (UTC, e.g. 2026-11-20T09:00:00Z)."""
    steps: list[ProgressiveStep] = Field(min_length=1)
    """The schedule: each step's offset from ``start`` and its percentage, both strictly increasing."""

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[ProgressiveStep]) -> list[ProgressiveStep]:
        for index in range(1, len(steps)):
            before, step = steps[index - 1], steps[index]
            if step.after <= before.after:
                raise KeyedError(
                    (index, "after"),
                    f"{format_duration(step.after)} is not later than the step before "
                    f"({format_duration(before.after)}); steps must increase in time",
                )
            if step.percentage <= before.percentage:
                raise KeyedError(
                    (index, "percentage"),
                    f"{step.percentage} is not above the step before ({before.percentage}); "
                    "steps must increase in percentage",
                )
        return steps


class CanaryFlag(FlagBase):
    """On for evaluations whose context says ``track: canary``."""

    strategy: Literal["canary"]
    """``canary``: on for the canary track of a service."""
    service: ServiceName
    """The service whose canary track gets the flag."""
    percentage: Percentage = 100
    """Share of canary-track evaluations that get it (100: all of them)."""


#: The model of each strategy, by the ``strategy`` that selects it.
FLAG_MODELS: dict[str, type[FlagBase]] = {
    "all_at_once": AllAtOnceFlag,
    "percentage": PercentageFlag,
    "progressive": ProgressiveFlag,
    "canary": CanaryFlag,
}
FLAG_STRATEGIES = tuple(FLAG_MODELS)


def _strategy_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("strategy")
    return getattr(value, "strategy", None)


Flag = Annotated[
    Union[
        Annotated[AllAtOnceFlag, Tag("all_at_once")],
        Annotated[PercentageFlag, Tag("percentage")],
        Annotated[ProgressiveFlag, Tag("progressive")],
        Annotated[CanaryFlag, Tag("canary")],
    ],
    Discriminator(
        _strategy_of,
        custom_error_type="unknown_strategy",
        custom_error_message="unknown strategy; allowed: " + ", ".join(FLAG_STRATEGIES),
    ),
]


