"""The whole stack config (``config:`` of a stack file) and the checks that span its areas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rollout.model import conventions
from rollout.model.config.alerting import AlertingSettings, RollbackSettings, SecretsSettings
from rollout.model.config.fields import DnsLabel, Model
from rollout.model.config.fleet import (
    FleetSettings,
    FreezeSettings,
    PromotesFrom,
    ReleaseGroupMembers,
    upstream_names,
)
from rollout.model.config.flags import FLAG_KEY, AllAtOnceFlag, CanaryFlag, Flag
from rollout.model.config.monitoring import CanaryThresholds, MetricNames, MonitoringSettings, SloSettings
from rollout.model.config.services import ServiceSettings
from rollout.model.config.targets import DockerSettings, KubernetesSettings
from rollout.model.errors import KeyedError


class StackConfig(Model):
    """Everything under ``config:`` in stacks/Pulumi.<stack>.yaml (``rollout:`` keys)."""

    target: Literal["docker", "kubernetes"]
    """``docker`` (the local stack) or ``kubernetes``."""
    tier: Literal["development", "staging", "production"]
    """Drives the conservative defaults and which policies are mandatory."""
    promotes_from: PromotesFrom | None = None
    """The stack that must complete a stage before this one may enter it (a stack name), or a list
    of stacks that must all have completed it (a wave after several stacks). The stacks and their
    ``promotesFrom`` form the fleet's graph; a cycle or an unknown stack is refused."""
    fleet: FleetSettings | None = None
    """The fleet-wide limit this stack counts against (a named group of stacks); unset: none."""
    release_groups: dict[DnsLabel, ReleaseGroupMembers] = {}
    """Services that move together, by group name (``checkout: [checkout-api, checkout-worker]``):
    no member enters a stage before every member completed the stage below
    (``rollout-release-group-in-step``), a rollback of one member rolls back every member, and
    ``rollout release``/``promote`` take the group (``--group``)."""
    freeze: FreezeSettings = FreezeSettings()
    """Freeze windows: when no advance, release or promote may begin."""
    kubernetes: KubernetesSettings | None = None
    """Required with target kubernetes."""
    docker: DockerSettings | None = None
    """Required with target docker."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """The monitoring stack."""
    slo: SloSettings = SloSettings()
    """Service level objectives."""
    canary: CanaryThresholds = CanaryThresholds()
    """The canary's budget: rollback triggers and advance gates."""
    metrics: MetricNames = MetricNames()
    """Names of the metric contract."""
    alerting: AlertingSettings
    """Where alerts go."""
    services: list[ServiceSettings] = Field(min_length=1)
    """The services shipped, each with a stable and a canary track."""
    flags: dict[str, Flag]
    """The flag set, by flag key (snake_case)."""
    secrets: SecretsSettings = SecretsSettings()
    """Credentials, each a Pulumi secret."""
    rollback: RollbackSettings = RollbackSettings()
    """The relay and the fast path of automatic rollbacks."""

    @field_validator("flags")
    @classmethod
    def _flag_keys(cls, flags: dict[str, Any]) -> dict[str, Any]:
        for key in flags:
            if not FLAG_KEY.fullmatch(key):
                raise KeyedError(
                    (key,), "is not a valid flag key: a lower-case letter, then lower-case letters, digits or '_'"
                )
        return flags

    @model_validator(mode="after")
    def _cross_checks(self) -> "StackConfig":
        if self.target == "kubernetes" and self.kubernetes is None:
            raise KeyedError(("kubernetes",), "is required when target is kubernetes")
        if self.target == "docker" and self.docker is None:
            raise KeyedError(("docker",), "is required when target is docker")
        names = [s.name for s in self.services]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise KeyedError(("services",), f"duplicate service name {', '.join(duplicates)}")
        grouped: dict[str, str] = {}
        for group, members in self.release_groups.items():
            for member in members:
                if member not in names:
                    raise KeyedError(("releaseGroups", group),
                                     f"{member!r} is not a service of this stack; allowed: {', '.join(names)}")
                if member in grouped:
                    raise KeyedError(("releaseGroups", group),
                                     f"{member} is already in release group {grouped[member]}; a service is in one group")
                grouped[member] = group
        for key in conventions.SAFETY_FLAGS:
            flag = self.flags.get(key)
            if flag is None:
                continue
            if not isinstance(flag, AllAtOnceFlag):
                raise KeyedError(
                    ("flags", key, "strategy"),
                    f"{flag.strategy} is not allowed for a safety flag; allowed: all_at_once",
                )
            if flag.enabled and not (flag.reason or "").strip():
                raise KeyedError(
                    ("flags", key, "reason"), f"switching the safety flag {key} on needs a reason"
                )
        for key, flag in self.flags.items():
            if isinstance(flag, CanaryFlag) and flag.service not in names:
                raise KeyedError(
                    ("flags", key, "service"),
                    f"{flag.service!r} is not a service of this stack; allowed: {', '.join(names)}",
                )
        if self.tier == "production":
            if not self.alerting.pagerduty:
                raise KeyedError(("alerting", "pagerduty"), "false is not allowed in production, which must page")
        monitoring = self.monitoring
        if monitoring.install and "existing" in monitoring.model_fields_set and self.target == "kubernetes":
            raise KeyedError(
                ("monitoring", "existing"), "is only for monitoring.install: false (an operator already in the cluster)"
            )
        if self.target == "kubernetes" and not monitoring.install and monitoring.grafana.url and self.secrets.grafana_auth is None:
            # The generated admin password only opens a Grafana this stack installs.
            raise KeyedError(
                ("secrets", "grafanaAuth"),
                "is required (a secret) when monitoring.grafana.url is set and monitoring.install is false",
            )
        if self.rollback.relay is not None:
            if self.target != "kubernetes":
                raise KeyedError(("rollback", "relay"), "is deployed on Kubernetes stacks only; allowed with target kubernetes")
            for name, key in (("relay_token", "relayToken"), ("relay_forge_token", "relayForgeToken")):
                if getattr(self.secrets, name) is None:
                    raise KeyedError(("secrets", key), "is required (a secret) because rollback.relay is set")
        if self.rollback.fast_path and self.rollback.relay is None:
            raise KeyedError(("rollback", "fastPath"), "true needs rollback.relay (the relay updates the route)")
        if self.alerting.pagerduty and self.secrets.pagerduty_routing_key is None:
            raise KeyedError(
                ("secrets", "pagerdutyRoutingKey"),
                "is required (a secret) because alerting.pagerduty is on",
            )
        return self

    @property
    def fast_path(self) -> bool:
        """Whether the relay takes a failing canary out of traffic itself (see rollback.fastPath)."""
        if self.rollback.relay is None:
            return False
        return self.tier == "production" if self.rollback.fast_path is None else self.rollback.fast_path

    @property
    def upstreams(self) -> tuple[str, ...]:
        """The stacks ``promotesFrom`` names, in its order."""
        return upstream_names(self.promotes_from)

    def release_group_of(self, service: str) -> str | None:
        """The release group ``service`` belongs to; None when it moves alone."""
        return next((group for group, members in self.release_groups.items() if service in members), None)

    @property
    def selector_labels(self) -> dict[str, str]:
        """The labels the operator's selectors need on the stack's monitoring custom resources."""
        monitoring = self.monitoring
        if not monitoring.install and monitoring.existing.labels is not None:
            return dict(monitoring.existing.labels)
        return {"release": monitoring.release_name}

    def service(self, name: str) -> ServiceSettings:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def safety_flags_on(self) -> list[str]:
        return [
            key
            for key in conventions.SAFETY_FLAGS
            if isinstance(self.flags.get(key), AllAtOnceFlag) and self.flags[key].enabled
        ]
