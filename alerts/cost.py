"""Cost: series and ingestion against the stack's budgets, sample limits, disk."""

from __future__ import annotations

from alerts.model import Alert, Scenario
from alerts.series import scoped
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select

PROMETHEUS = {"instance": "prometheus:9090", "job": c.JOB_PROMETHEUS}
NODE_JOB = f'job="{c.JOB_NODE}"'
REAL_FILESYSTEMS = 'fstype!~"tmpfs|overlay"'


def alerts(config: StackConfig) -> list[Alert]:
    budgets = config.monitoring.budgets
    series_budget, ingestion_budget = budgets.active_series, budgets.ingestion_samples_per_second
    labels = {"job": c.JOB_PROMETHEUS, "instance": "prometheus:9090"}
    head = scoped(config, "prometheus_tsdb_head_series", **PROMETHEUS)
    appended = scoped(config, "prometheus_tsdb_head_samples_appended_total", **PROMETHEUS)
    exceeded = scoped(config, "prometheus_target_scrapes_exceeded_sample_limit_total", **PROMETHEUS)
    node = {"device": "/dev/sda1", "fstype": "ext4", "instance": "node:9100", "job": c.JOB_NODE, "mountpoint": "/"}
    avail, size = (scoped(config, f"node_filesystem_{what}_bytes", **node) for what in ("avail", "size"))
    return [
        Alert(
            name="PrometheusActiveSeriesOverBudget",
            own_monitoring=True,
            expr=f"{select(config, 'prometheus_tsdb_head_series')} > {series_budget}",
            for_="15m",
            severity="warning",
            priority="P3",
            category="cost",
            summary="Prometheus holds more series than budgeted",
            description=f"Prometheus {{{{ $labels.instance }}}} has held over {series_budget} active series for 15 minutes; find the metric with new label values (cardinality) or raise monitoring.budgets.activeSeries.",
            scenario=Scenario(
                incident={head: f"{series_budget + 1000}x80"},
                healthy={head: f"{series_budget // 2}x80"},
                quiet_at="14m",
                firing_at="16m",
                labels=labels,
            ),
        ),
        Alert(
            name="PrometheusIngestionRateSpike",
            own_monitoring=True,
            expr=f"rate({select(config, 'prometheus_tsdb_head_samples_appended_total')}[5m]) > {ingestion_budget}",
            for_="15m",
            severity="warning",
            priority="P3",
            category="cost",
            summary="Prometheus ingests more samples than budgeted",
            description=f"Prometheus {{{{ $labels.instance }}}} has ingested over {ingestion_budget} samples per second for 15 minutes.",
            scenario=Scenario(
                incident={appended: f"0+{ingestion_budget * 30}x100"},
                healthy={appended: f"0+{ingestion_budget * 5}x100"},
                # rate() over 5 m understates a counter that began inside the
                # window, so the condition holds from about 3 m on.
                quiet_at="14m",
                firing_at="20m",
                labels=labels,
            ),
        ),
        Alert(
            name="ScrapeSampleLimitHit",
            own_monitoring=True,
            expr=f"increase({select(config, 'prometheus_target_scrapes_exceeded_sample_limit_total')}[10m]) > 0",
            for_="0s",
            severity="warning",
            priority="P3",
            category="cost",
            summary="Scrapes hit their sample limit",
            description="Prometheus {{ $labels.instance }} dropped whole scrapes in the last 10 minutes because a target exposed more samples than its limit; that target's data is missing.",
            scenario=Scenario(
                incident={exceeded: "0x20 1+1x20"},
                healthy={exceeded: "0x40"},
                quiet_at="4m",
                firing_at="6m",
                labels=labels,
            ),
        ),
        Alert(
            name="NodeFilesystemAlmostFull",
            own_monitoring=True,
            expr=(
                f"{select(config, 'node_filesystem_avail_bytes', NODE_JOB, REAL_FILESYSTEMS)}\n"
                f"  /\n{select(config, 'node_filesystem_size_bytes', NODE_JOB, REAL_FILESYSTEMS)} < 0.1"
            ),
            for_="15m",
            severity="warning",
            priority="P3",
            category="cost",
            summary="{{ $labels.mountpoint }} on {{ $labels.instance }} is almost full",
            description="Less than 10 % of {{ $labels.mountpoint }} on {{ $labels.instance }} has been free for 15 minutes.",
            scenario=Scenario(
                incident={avail: "5x80", size: "100x80"},
                healthy={avail: "50x80", size: "100x80"},
                quiet_at="14m",
                firing_at="16m",
                labels={"job": c.JOB_NODE, "instance": "node:9100", "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"},
            ),
        ),
    ]
