"""The monitoring stack, the SLOs, the canary's budget and the metric contract's names.

``rollout:monitoring``, ``rollout:slo``, ``rollout:canary`` and ``rollout:metrics``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, model_validator

from rollout.model import conventions
from rollout.model.config.confidence import ConfidenceSettings
from rollout.model.config.existing import ExistingMonitoringSettings
from rollout.model.config.fields import (
    ChartName,
    Count,
    MetricName,
    Model,
    PositiveDuration,
    PositiveSeconds,
    Quantity,
    Ratio,
    ReleaseName,
    at_least,
)
from rollout.model.durations import format_duration
from rollout.model.errors import KeyedError


class ResourceList(Model):
    cpu: Quantity
    """CPU, e.g. 250m or 2."""
    memory: Quantity
    """Memory, e.g. 512Mi or 4Gi."""


class Resources(Model):
    """Container requests and limits; both are required so that scheduling and
    eviction behave predictably."""

    requests: ResourceList
    """What the scheduler reserves."""
    limits: ResourceList
    """The most the container may use."""


class StorageSettings(Model):
    """Prometheus' time-series storage."""

    persistent: bool = True
    """A PersistentVolumeClaim (true) or an emptyDir that dies with the pod."""
    size: Quantity = "50Gi"
    """Size of the volume claim."""
    storage_class: str | None = None
    """StorageClass of the claim; unset uses the cluster's default class."""
    protect: bool = False
    """Refuse to delete the volume with the stack (Pulumi ``protect`` and ``retainOnDelete``).
    Production keeps it on.
    """


class CostBudgets(Model):
    """Ceilings for the cost alerts; raise them with the capacity of Prometheus."""

    active_series: Count = 200_000
    """Head series above which PrometheusActiveSeriesOverBudget fires."""
    ingestion_samples_per_second: Count = 50_000
    """Samples ingested per second above which the ingestion-spike alert fires."""


class GrafanaSettings(Model):
    url: str | None = None
    """URL of a Grafana the pulumiverse-grafana provider manages folders, datasources and
    dashboards in. Unset on Kubernetes: dashboards go in ConfigMaps for the chart's sidecar
    only.
    """
    folder: str = "Rollout"
    """Folder that holds the stack's dashboards."""


class MonitoringSettings(Model):
    """The monitoring stack: Prometheus, Alertmanager, Grafana, Pushgateway, node-exporter."""

    install: bool = True
    """Install kube-prometheus-stack (true) or use a Prometheus Operator already running in the
    cluster (false). Ignored by the Docker target.
    """
    release_name: ReleaseName = "rollout-monitoring"
    """The Helm release name of kube-prometheus-stack: the one the stack installs (object names
    start with it; give each stack of one cluster its own), or, with ``install: false``, the
    existing install's, whose Prometheus selects only monitors, probes and rules labelled
    ``release: <this>`` (see ``existing.labels``).
    """
    existing: ExistingMonitoringSettings = ExistingMonitoringSettings()
    """With ``install: false``: the labels the existing operator selects, its Alertmanager's
    matcher strategy, and the blackbox exporter the Probes use. Refused with ``install: true``.
    """
    scrape_interval: PositiveDuration = timedelta(seconds=15)
    """How often Prometheus scrapes every target."""
    evaluation_interval: PositiveDuration = timedelta(seconds=15)
    """How often rules are evaluated; alert timing is a multiple of it."""
    retention: PositiveDuration = timedelta(days=15)
    """How long Prometheus keeps samples."""
    storage: StorageSettings = StorageSettings()
    """Prometheus' volume."""
    alertmanager_replicas: Count = 1
    """Alertmanager replicas; more than one form a cluster that deduplicates notifications."""
    prometheus_resources: Resources | None = None
    """Prometheus' requests and limits; unset uses the chart's defaults."""
    alertmanager_resources: Resources | None = None
    """Each Alertmanager replica's requests and limits (Kubernetes); unset uses the chart's
    defaults. Set them where a noisy neighbour could starve the paging path (production).
    """
    grafana: GrafanaSettings = GrafanaSettings()
    """Grafana settings."""
    catalogue: Literal["full", "development"] = "full"
    """``full`` (staging, production: every alert) or ``development`` (a smaller set for local and
    dev that leaves out the SLO burn-rate pages).
    """
    budgets: CostBudgets = CostBudgets()
    """Ceilings for the cost alerts."""
    charts: dict[ChartName, str] = {}
    """Local copies of the charts, by chart name (``kube-prometheus-stack``,
    ``prometheus-blackbox-exporter``, ``prometheus-pushgateway``): a chart directory or a ``.tgz``
    made by ``helm pull``, relative to the project. What an air-gapped site mirrors; a chart not
    listed is fetched from the chart repository. Each must be the pinned version
    (rollout/model/versions.py): its ``Chart.yaml`` is checked before anything is declared.
    """


class SloSettings(Model):
    """Service level objectives, alerted with multi-window multi-burn-rate rules."""

    availability: Ratio = 0.999
    """Share of requests that must succeed over the window (99.9 %)."""
    error_ratio: Ratio = 0.001
    """Share of requests that may fail with a 5xx over the window (0.1 %)."""
    latency_p95_seconds: PositiveSeconds = 0.2
    """P95 latency objective in seconds (200 ms)."""
    ci_pass_ratio: Ratio = 0.98
    """Minimum CI test pass ratio, from the Pushgateway (98 %)."""
    window: PositiveDuration = timedelta(days=30)
    """The SLO window the error budget is counted over."""


def _window_at_least(value: timedelta, seconds: int) -> timedelta:
    if value < timedelta(seconds=seconds):
        raise ValueError(f"{format_duration(value)} is shorter than {format_duration(timedelta(seconds=seconds))}")
    return value


class CanaryThresholds(Model):
    """The canary's budget: rollback triggers (alerts) and gates (policies) alike."""

    max_error_ratio: Ratio = 0.01
    """Highest 5xx ratio the canary may show (1 %)."""
    max_latency_p95_seconds: PositiveSeconds = 0.5
    """Highest P95 latency in seconds (500 ms)."""
    max_latency_p99_seconds: PositiveSeconds = 1.0
    """Highest P99 latency in seconds (1000 ms)."""
    max_consecutive_failed_health_checks: Count = 5
    """Consecutive failed health checks that mean "unhealthy" (5)."""
    min_requests: Count = 100
    """Fewest canary requests over a stage for its SLIs to count as evidence."""
    sustain_for: PositiveDuration = timedelta(minutes=5)
    """How long a rollback trigger must hold before it fires (5 min)."""
    fast_trigger_factor: Annotated[float, at_least(2)] = 10.0
    """The short-window trigger (CanaryErrorRateCritical) fires when the canary's error ratio over
    ``fastTriggerWindow`` reaches this many times ``maxErrorRatio`` (capped at 100 %), held for
    half the window: a canary failing every request is rolled back within about a minute, while one
    just over budget waits for ``sustainFor``.
    """
    fast_trigger_window: Annotated[PositiveDuration, AfterValidator(lambda v: _window_at_least(v, 60))] = timedelta(minutes=1)
    """The short trigger's window (at least 1m: four scrapes at 15 s)."""
    fast_trigger_min_requests: Count = 20
    """Fewest canary requests within ``fastTriggerWindow`` for the short trigger to fire: a few
    failures of a canary without traffic are not evidence.
    """
    evidence_max_age: PositiveDuration = timedelta(minutes=30)
    """Evidence older than this blocks an advance."""
    confidence: ConfidenceSettings = ConfidenceSettings()
    """How sure the gate and the comparison with stable must be (docs/operations.md, "Three verdicts")."""

    @model_validator(mode="after")
    def _p99_not_below_p95(self) -> "CanaryThresholds":
        if self.max_latency_p99_seconds < self.max_latency_p95_seconds:
            raise KeyedError(
                ("maxLatencyP99Seconds",),
                f"{self.max_latency_p99_seconds} is below maxLatencyP95Seconds "
                f"({self.max_latency_p95_seconds})",
            )
        return self


class MetricNames(Model):
    """The metric contract's names, for services that expose other names."""

    requests_total: MetricName = conventions.HTTP_REQUESTS_TOTAL
    """Counter of requests, labelled service, track and code."""
    request_duration_bucket: MetricName = conventions.HTTP_REQUEST_DURATION_BUCKET
    """Histogram buckets of request durations in seconds, labelled service, track and le."""
    probe_success: MetricName = conventions.PROBE_SUCCESS
    """The blackbox exporter's probe result, labelled service and track."""


