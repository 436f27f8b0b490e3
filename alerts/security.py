"""Security: safety flags switched on, notification delivery, certificates, denied requests."""

from __future__ import annotations

from alerts.model import Alert, Scenario
from alerts.series import Series, scoped
from rollout.model import conventions as c
from rollout.model import scope
from rollout.model.config import StackConfig
from rollout.model.scope import select


PROBE_JOB = f'job="{c.JOB_PROBE}"'
DENIED = f'{c.CODE_LABEL}=~"401|403"'


def alerts(config: StackConfig) -> list[Alert]:
    s = Series(config)
    failed = scoped(config, "alertmanager_notifications_failed_total", instance="alertmanager:9093", integration="slack", job=c.JOB_ALERTMANAGER)
    expiry = scoped(
        config, "probe_ssl_earliest_cert_expiry",
        instance=f"https://{s.service}.example:443", job=c.JOB_PROBE, service=s.service, track="stable",
    )
    denied = {
        s.requests("stable"): "0+100x100",
        s.requests("stable", "401"): "0+30x100",
        s.requests("stable", "500"): "0x100",
    }
    allowed = {s.requests("stable"): "0+100x100", s.requests("stable", "401"): "0+1x100", s.requests("stable", "500"): "0x100"}
    return [
        Alert(
            name="SafetyFlagEnabled",
            expr=f"{select(config, c.SAFETY_FLAG_ENABLED)} == 1",
            for_="0s",
            severity="warning",
            priority="P2",
            category="security",
            summary="Safety flag {{ $labels.flag }} is on",
            description="The safety flag {{ $labels.flag }} is switched on in the stack config; rollout advances are blocked until it is off.",
            scenario=Scenario(
                incident={},
                healthy={},
                quiet_at="0s",
                firing_at="1m",
                labels={"flag": "maintenance_mode"},
                safety_flag_on="maintenance_mode",
            ),
        ),
        Alert(
            name="AlertmanagerNotificationsFailing",
            own_monitoring=True,
            expr=f"rate({select(config, 'alertmanager_notifications_failed_total')}[5m]) > 0",
            for_="10m",
            severity="warning",
            priority="P2",
            category="security",
            summary="Alertmanager fails to notify through {{ $labels.integration }}",
            description="Alertmanager {{ $labels.instance }} has failed to send notifications through {{ $labels.integration }} for 10 minutes; check the receiver's credentials and reachability.",
            scenario=Scenario(
                incident={failed: "0+1x80"},
                healthy={failed: "0x80"},
                quiet_at="9m",
                firing_at="12m",
                labels={"job": c.JOB_ALERTMANAGER, "instance": "alertmanager:9093", "integration": "slack"},
            ),
        ),
        Alert(
            name="CertificateExpiringSoon",
            expr=f"{select(config, 'probe_ssl_earliest_cert_expiry', PROBE_JOB)} - time() < 14 * 86400",
            for_="1h",
            severity="warning",
            priority="P3",
            category="security",
            summary="The certificate of {{ $labels.instance }} expires within 14 days",
            description="The TLS certificate served by {{ $labels.instance }} expires in less than 14 days; renew it.",
            scenario=Scenario(
                incident={expiry: f"{7 * 86400}x40"},
                healthy={expiry: f"{90 * 86400}x40"},
                interval="5m",
                quiet_at="30m",
                firing_at="1h30m",
                labels={"job": c.JOB_PROBE, "instance": f"https://{s.service}.example:443", "service": s.service, "track": "stable"},
            ),
        ),
        Alert(
            name="UnauthorizedRequestsHigh",
            expr=(
                # The recorded rate by code: the raw request counters are read once, by the SLI
                # group. By the scope labels too: the recorded rate it is divided by carries them.
                f"sum by ({', '.join([*scope.labels(config), c.SERVICE_LABEL])}) ({select(config, c.CODE_RATE, DENIED)})\n"
                f"  /\n{select(config, c.SERVICE_REQUEST_RATE)} > 0.1"
            ),
            for_="10m",
            severity="warning",
            priority="P3",
            category="security",
            summary="{{ $labels.service }} denies many requests",
            description="Over 10 % of {{ $labels.service }}'s requests have been denied (401/403) for 10 minutes: a credential leak, a scan, or a broken client.",
            scenario=Scenario(
                incident=denied, healthy=allowed, quiet_at="9m", firing_at="12m", labels={"service": s.service}
            ),
        ),
    ]
