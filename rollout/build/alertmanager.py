"""Alertmanager's configuration: routing by priority, inhibition, receivers.

- P0–P1 → PagerDuty (where the stack pages; otherwise the warnings channel);
- P2–P3 → Slack: the deployments channel for the deployment category, the
  warnings channel for everything else;
- P4 → email;
- the canary's rollback triggers (label ``rollback="true"``) also → the rollback
  workflow's webhook, before the routes above (``continue``);
- the Watchdog → the heartbeat URL (``secrets.heartbeatUrl``) every
  ``alerting.heartbeatInterval``: a dead man's switch, whose service alerts when
  the heartbeats stop (without the URL, a receiver with no integration);
- the rollback webhook goes to the relay (``rollback.relay``, in the cluster)
  or to ``secrets.rollbackWebhookUrl``, with ``secrets.relayToken`` as its
  bearer token when set;
- a critical alert inhibits the warning of the same alert and service, an
  SLO's page inhibits its ticket, and the canary's short-window error trigger
  (CanaryErrorRateCritical) inhibits the sustained one of the same canary.

Secrets: the builder takes a ``reveal`` function. ``rollout render`` passes
placeholders; the program passes the decrypted values and wraps the whole text
in a Pulumi secret at once, so the file on disk never holds a credential and
the deployed one is secret end to end. Mounting each secret as a file behind
Alertmanager's ``*_file`` fields was not chosen: the pinned Alertmanager 0.25
has ``routing_key_file``, ``api_url_file`` and ``auth_password_file``, but a
webhook's ``url_file`` came later (amtool 0.25 rejects it), so the rollback
webhook's URL could not be kept out of the file that way.
"""

from __future__ import annotations

from typing import Callable

from rollout.model import conventions as c
from rollout.model.config import SecretRef, StackConfig
from rollout.model.durations import format_duration

#: How to turn a secret into text: (secret, is_url) -> text.
Reveal = Callable[[SecretRef, bool], str]

WATCHDOG, PAGERDUTY, SLACK_WARNINGS, SLACK_DEPLOYMENTS, EMAIL, ROLLBACK = (
    "watchdog",
    "pagerduty",
    "slack-warnings",
    "slack-deployments",
    "email",
    "rollback-webhook",
)


def placeholders(secret: SecretRef, is_url: bool) -> str:
    """The render-time reveal: placeholders only."""
    return secret.placeholder_url if is_url else secret.placeholder


def plaintext(secret: SecretRef, is_url: bool) -> str:
    """The deploy-time reveal (under Pulumi, which decrypted the value)."""
    if secret.value is None:
        return placeholders(secret, is_url)
    return secret.value


def _required(config: StackConfig, name: str) -> SecretRef:
    secret = getattr(config.secrets, name)
    if secret is None:
        raise ValueError(f"rollout:secrets.{name} is required by the Alertmanager configuration")
    return secret


def receivers_in_use(config: StackConfig) -> list[str]:
    used = [WATCHDOG, SLACK_WARNINGS, SLACK_DEPLOYMENTS, EMAIL]
    if config.alerting.pagerduty:
        used.append(PAGERDUTY)
    if config.alerting.rollback_webhook:
        used.append(ROLLBACK)
    return used


def rollback_url(config: StackConfig, reveal: Reveal = placeholders) -> str:
    """Where rollback triggers go: the deployed relay's Service, else ``secrets.rollbackWebhookUrl``."""
    if config.rollback.relay is not None and config.kubernetes is not None:
        return f"http://{c.RELAY_NAME}.{config.kubernetes.namespace}.svc:{c.RELAY_PORT}{c.RELAY_WEBHOOK_PATH}"
    return reveal(_required(config, "rollback_webhook_url"), True)


def alertmanager_config(config: StackConfig, reveal: Reveal = placeholders) -> dict:
    alerting = config.alerting
    routes: list[dict] = [
        # The watchdog pages no one: it is a heartbeat, sent on a short repeat
        # interval; the heartbeat service alerts when it stops.
        {
            "receiver": WATCHDOG,
            "matchers": ['alertname="Watchdog"'],
            "group_wait": "0s",
            "group_interval": format_duration(alerting.heartbeat_interval),
            "repeat_interval": format_duration(alerting.heartbeat_interval),
        },
    ]
    if alerting.rollback_webhook:
        routes.append(
            {
                "receiver": ROLLBACK,
                "matchers": [f'{c.ROLLBACK_LABEL}="true"'],
                # Start the rollback without waiting for more alerts of the group.
                "group_wait": "0s",
                "continue": True,
            }
        )
    routes += [
        {"receiver": PAGERDUTY if alerting.pagerduty else SLACK_WARNINGS, "matchers": ['priority=~"P0|P1"']},
        {"receiver": SLACK_DEPLOYMENTS, "matchers": ['priority=~"P2|P3"', 'category="deployment"']},
        {"receiver": SLACK_WARNINGS, "matchers": ['priority=~"P2|P3"']},
        {"receiver": EMAIL, "matchers": ['priority="P4"']},
    ]
    slack_text = (
        '{{ range .Alerts }}*{{ .Labels.priority }}* {{ .Annotations.summary }}\n'
        "{{ .Annotations.description }}\n<{{ .Annotations.runbook_url }}|runbook>\n{{ end }}"
    )
    watchdog: dict = {"name": WATCHDOG}
    if config.secrets.heartbeat_url is not None:
        watchdog["webhook_configs"] = [{"url": reveal(config.secrets.heartbeat_url, True), "send_resolved": False}]
    receivers = [watchdog]
    if alerting.pagerduty:
        receivers.append(
            {
                "name": PAGERDUTY,
                "pagerduty_configs": [
                    {
                        "routing_key": reveal(_required(config, "pagerduty_routing_key"), False),
                        "severity": '{{ if eq .CommonLabels.severity "critical" }}critical{{ else }}warning{{ end }}',
                        "description": "{{ .CommonAnnotations.summary }}",
                        "send_resolved": True,
                    }
                ],
            }
        )
    for name, channel, secret in (
        (SLACK_WARNINGS, alerting.slack.warnings_channel, "slack_warnings_webhook_url"),
        (SLACK_DEPLOYMENTS, alerting.slack.deployments_channel, "slack_deployments_webhook_url"),
    ):
        receivers.append(
            {
                "name": name,
                "slack_configs": [
                    {
                        "api_url": reveal(_required(config, secret), True),
                        "channel": channel,
                        "send_resolved": True,
                        "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                        "text": slack_text,
                    }
                ],
            }
        )
    email = {
        "to": alerting.email.to,
        "from": alerting.email.sender,
        "smarthost": alerting.email.smarthost,
        "require_tls": alerting.email.require_tls,
        "send_resolved": False,
    }
    if alerting.email.username:
        email["auth_username"] = alerting.email.username
        email["auth_password"] = reveal(_required(config, "smtp_password"), False)
    receivers.append({"name": EMAIL, "email_configs": [email]})
    if alerting.rollback_webhook:
        webhook = {"url": rollback_url(config, reveal), "send_resolved": False}
        if config.secrets.relay_token is not None:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": reveal(config.secrets.relay_token, False)}}
        receivers.append({"name": ROLLBACK, "webhook_configs": [webhook]})
    return {
        "route": {
            "receiver": SLACK_WARNINGS,
            "group_by": ["alertname", c.SERVICE_LABEL],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", c.SERVICE_LABEL],
            },
            # The short-window trigger and the sustained one are one rollback of one canary:
            # one dispatch and one page, from whichever fired first.
            {
                "source_matchers": ['alertname="CanaryErrorRateCritical"'],
                "target_matchers": ['alertname="CanaryErrorRateHigh"'],
                "equal": [c.SERVICE_LABEL, c.TRACK_LABEL],
            },
            # An SLO's page (critical) and ticket (warning) are two alerts of one SLO.
            {
                "source_matchers": ['severity="critical"', 'slo=~".+"'],
                "target_matchers": ['severity="warning"', 'slo=~".+"'],
                "equal": ["slo", c.SERVICE_LABEL],
            },
        ],
        "receivers": receivers,
    }
