"""Where alerts go, what a rollback trigger does, and the credentials.

``rollout:alerting``, ``rollout:rollback`` and ``rollout:secrets``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from rollout.model.config.fields import Model, PositiveDuration, PositiveSeconds, Secret, between
from rollout.model.images import DigestImageReference


class SlackSettings(Model):
    warnings_channel: str = "#rollout-warnings"
    """Channel for every P2–P3 alert."""
    deployments_channel: str = "#rollout-deployments"
    """Channel for P2–P3 alerts of the deployment category."""


class EmailSettings(Model):
    """Where P4 (informational) alerts are mailed."""

    to: str
    """Recipient of P4 alerts."""
    sender: str = Field(alias="from")
    """Sender address (key ``from``)."""
    smarthost: str
    """SMTP relay as host:port."""
    username: str | None = None
    """SMTP user; the password is ``secrets.smtpPassword``."""
    require_tls: bool = True
    """Refuse to send without STARTTLS."""


class AlertingSettings(Model):
    pagerduty: bool = True
    """P0–P1 go to PagerDuty; production refuses to run without it."""
    slack: SlackSettings = SlackSettings()
    """Slack channels for P2-P3 alerts."""
    email: EmailSettings
    """Mail settings for P4 alerts."""
    rollback_webhook: bool = True
    """Send the canary's rollback triggers to the rollback workflow's webhook too."""
    heartbeat_interval: PositiveDuration = timedelta(minutes=1)
    """How often the Watchdog is sent to ``secrets.heartbeatUrl`` (its repeat interval). The
    heartbeat service should alert when none arrived for a few intervals.
    """
    priorities: dict[str, Literal["P0", "P1", "P2", "P3", "P4"]] = {}
    """Override the priority (and so the routing) of alerts by name, e.g. ``{ServiceLatencyP99High: P2}``.
    The severity follows the priority: P0–P1 critical, P2–P3 warning, P4 info."""
    runbook_base_url: str = "docs/runbooks"
    """Where the runbooks are served; each alert's runbook_url is ``<this>/<AlertName>.md``. Set
    it to your repository's, e.g. https://github.com/<org>/<repo>/blob/main/docs/runbooks: a
    relative link is dead in Slack, PagerDuty and mail, and `rollout check` warns about one
    outside the development tier.
    """


def _repository(value: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", value):
        raise ValueError(f"{value!r} is not OWNER/NAME")
    return value


class RelaySettings(Model):
    """The relay (``rollout relay``) the program deploys beside Alertmanager on Kubernetes stacks."""

    image: DigestImageReference
    """The relay's image, pinned by digest (``ghcr.io/<org>/rollout-relay@sha256:...``), as the
    Publish relay image workflow prints it.
    """
    repository: Annotated[str, AfterValidator(_repository)]
    """OWNER/NAME of the repository whose rollback workflow the dispatch starts."""
    forge_url: str = "https://api.github.com"
    """The forge's REST API (GitHub Enterprise: ``https://<host>/api/v3``)."""
    replicas: Annotated[int, between(1, 5)] = 2
    """Relay pods (production's policies want 2 or more). Each remembers what it dispatched: a
    repeat that reaches the other pod dispatches again, which the Rollback workflow takes as one
    more 0 % entry, queued behind the first.
    """
    deadline_seconds: PositiveSeconds = 30.0
    """How long one dispatch may take, retries included."""


class RollbackSettings(Model):
    """What happens when a rollback trigger fires."""

    fast_path: bool | None = None
    """The relay also sets the service's HTTPRoute so the canary takes no traffic, before it
    dispatches the rollback (Kubernetes stacks with a relay). Unset: on in the production tier,
    off elsewhere.
    """
    relay: RelaySettings | None = None
    """Deploy the relay (Kubernetes stacks): Alertmanager's rollback webhook then goes to it, and
    ``secrets.rollbackWebhookUrl`` is not used.
    """


class SecretsSettings(Model):
    """Every credential, each a Pulumi secret (``pulumi config set --secret --path``)."""

    pagerduty_routing_key: Secret | None = None
    """PagerDuty Events API v2 routing key (required when alerting.pagerduty is on)."""
    slack_warnings_webhook_url: Secret | None = None
    """Slack incoming-webhook URL of the warnings channel."""
    slack_deployments_webhook_url: Secret | None = None
    """Slack incoming-webhook URL of the deployments channel."""
    smtp_password: Secret | None = None
    """Password of alerting.email.username at the SMTP relay."""
    rollback_webhook_url: Secret | None = None
    """URL that starts the rollback workflow when a rollback trigger fires (without a deployed
    relay: e.g. a ``rollout relay`` run elsewhere).
    """
    relay_token: Secret | None = None
    """Bearer token Alertmanager sends to the relay (``http_config.authorization``); the relay's
    ``ROLLOUT_RELAY_TOKEN``. Required with ``rollback.relay``.
    """
    relay_forge_token: Secret | None = None
    """The forge token the relay dispatches with (its ``GITHUB_TOKEN``): a fine-grained token
    with Contents read and write on ``rollback.relay.repository`` only. Required with
    ``rollback.relay``.
    """
    heartbeat_url: Secret | None = None
    """URL the Watchdog is sent to every ``alerting.heartbeatInterval`` (a dead man's switch: a
    heartbeat service, or a PagerDuty heartbeat). Unset: the Watchdog goes to no receiver.
    """
    grafana_auth: Secret | None = None
    """Grafana service-account token (or user:password) for the grafana provider; unset uses the
    admin password generated for the Grafana the stack installs; required with
    ``monitoring.grafana.url`` when ``monitoring.install`` is false.
    """


