"""How confident the canary's judgement must be: ``rollout:canary.confidence``.

The gate ``rollout-canary-within-budget`` judges each traffic measure (errors,
the shares slower than the P95 and P99 limits) as pass, fail or inconclusive
from confidence bounds of the canary's share and the stable track's over the same
window (:mod:`rollout.gates.confidence`); the rollback trigger
``CanaryWorseThanStable`` makes the same comparison in PromQL. These settings
say how sure each must be and how much worse than stable the canary may be.
Held by :class:`rollout.model.config.monitoring.CanaryThresholds` as ``confidence``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator

from rollout.model.config.fields import Duration, Model, between
from rollout.model.durations import format_duration


def _window(value: timedelta) -> timedelta:
    if value < timedelta(minutes=5):
        raise ValueError(f"{format_duration(value)} is shorter than 5m")
    return value


class ToleranceSettings(Model):
    """How many times the stable track's share the canary's may be, per measure."""

    error_ratio: Annotated[float, between(1, 1000)] = 2.0
    """The canary's 5xx share may be up to this many times stable's over the same window (2×)."""
    latency_p95: Annotated[float, between(1, 1000)] = 2.0
    """The canary's share of requests slower than ``maxLatencyP95Seconds``, times stable's (2×)."""
    latency_p99: Annotated[float, between(1, 1000)] = 2.0
    """The canary's share of requests slower than ``maxLatencyP99Seconds``, times stable's (2×)."""


class ConfidenceSettings(Model):
    """How sure the canary's judgement must be, and how much worse than stable it may be."""

    level: Annotated[float, between(0.5, 0.9999)] = 0.95
    """Confidence of the bounds each measure is judged by (95 %): a regression passes a
    measure with a probability of at most 1 - level. Higher holds stages longer for data."""
    tolerance: ToleranceSettings = ToleranceSettings()
    """Times the stable track's share the canary's may be, per measure."""
    negligible: Annotated[float, between(0, 1)] = 0.1
    """A share below this fraction of its budget never counts as worse than stable (0.1: under
    0.1 % errors with the 1 % budget): against a stable track that fails almost nothing, twice
    almost nothing is still almost nothing, and could never be shown otherwise."""
    trigger_window: Annotated[Duration, AfterValidator(_window)] = timedelta(minutes=30)
    """The window over which the rollback trigger CanaryWorseThanStable compares the tracks (30m)."""
    trigger_min_requests: Annotated[int, between(1, 10**9)] = 1000
    """Fewest canary requests within ``triggerWindow`` for CanaryWorseThanStable to fire: a few
    failures of a quiet canary page no one."""
