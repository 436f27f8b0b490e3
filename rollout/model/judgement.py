"""How confident the canary's judgement must be: ``rollout:canary.confidence`` of a stack file.

The gate ``rollout-canary-within-budget`` judges each traffic measure (errors,
the share slower than the P95 and P99 limits) as pass, fail or inconclusive
from confidence bounds of the canary's share and the stable track's over the same
window (:mod:`rollout.gates.confidence`); the rollback trigger
``CanaryWorseThanStable`` makes the same comparison in PromQL. These settings
say how sure each must be and how much worse than stable the canary may be.

A model of its own, held by :class:`rollout.model.config.CanaryThresholds` as its
``confidence`` field. It keeps the config model's conventions (frozen, camelCase
keys, unknown keys refused, strict types, each field's docstring its
description) with a copy of the base's settings, because importing the base
from :mod:`rollout.model.config` would make the two modules import each other;
tests/test_confidence.py holds the copy equal to the base's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from rollout.model.durations import format_duration, parse_duration

MODEL_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    alias_generator=to_camel,
    populate_by_name=False,
    arbitrary_types_allowed=True,
    strict=True,
    use_attribute_docstrings=True,
)


def _between(low: float, high: float):
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"{value} is not between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)


def _window(value: timedelta) -> timedelta:
    if value < timedelta(minutes=5):
        raise ValueError(f"{format_duration(value)} is shorter than 5m")
    return value


Window = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_window),
                   PlainSerializer(format_duration, return_type=str)]


class _Model(BaseModel):
    model_config = MODEL_CONFIG


class ToleranceSettings(_Model):
    """How many times the stable track's share the canary's may be, per measure."""

    error_ratio: Annotated[float, _between(1, 1000)] = 2.0
    """The canary's 5xx share may be up to this many times stable's over the same window (2×)."""
    latency_p95: Annotated[float, _between(1, 1000)] = 2.0
    """The canary's share of requests slower than ``maxLatencyP95Seconds``, times stable's (2×)."""
    latency_p99: Annotated[float, _between(1, 1000)] = 2.0
    """The canary's share of requests slower than ``maxLatencyP99Seconds``, times stable's (2×)."""


class ConfidenceSettings(_Model):
    """How sure the canary's judgement must be, and how much worse than stable it may be."""

    level: Annotated[float, _between(0.5, 0.9999)] = 0.95
    """Confidence of the bounds each measure is judged by (95 %): a regression passes a
    measure with a probability of at most 1 - level. Higher holds stages longer for data."""
    tolerance: ToleranceSettings = ToleranceSettings()
    """Times the stable track's share the canary's may be, per measure."""
    negligible: Annotated[float, _between(0, 1)] = 0.1
    """A share below this fraction of its budget never counts as worse than stable (0.1: under
    0.1 % errors with the 1 % budget): against a stable track that fails almost nothing, twice
    almost nothing is still almost nothing, and could never be shown otherwise."""
    trigger_window: Window = timedelta(minutes=30)
    """The window over which the rollback trigger CanaryWorseThanStable compares the tracks (30m)."""
    trigger_min_requests: Annotated[int, _between(1, 10**9)] = 1000
    """Fewest canary requests within ``triggerWindow`` for CanaryWorseThanStable to fire: a few
    failures of a quiet canary page no one."""
