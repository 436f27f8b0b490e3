"""The stack config model: every ``rollout:*`` key of ``stacks/Pulumi.<stack>.yaml``.

The model is validated in full before any resource is declared. Every model is
frozen and refuses unknown keys; keys are camelCase in YAML (Pulumi's
convention) and snake_case in Python. Each knob's docstring says what it does
and when to change it; docs/configuration.md is the reference for users.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from rollout.model import conventions
from rollout.model.errors import KeyedError
from rollout.model.durations import format_duration, parse_duration
from rollout.model.plans import BUILTIN_PLANS, Plan, Stage
from rollout.model.releases import canary_replicas
from rollout.model.time import in_range


class SecretRef:
    """A value that was stored as a Pulumi secret (``secure:`` in the stack file).

    ``value`` is the plaintext when the program runs under Pulumi (which decrypts
    it), and None in the CLI, which never decrypts: there it renders as a
    placeholder. ``str()`` never shows the value.
    """

    __slots__ = ("path", "value")

    def __init__(self, path: str, value: str | None) -> None:
        self.path = path
        self.value = value

    @property
    def placeholder(self) -> str:
        return conventions.SECRET_PLACEHOLDER.format(path=self.path)

    @property
    def placeholder_url(self) -> str:
        """The placeholder for fields that must hold a URL."""
        return conventions.SECRET_PLACEHOLDER_URL.format(path=self.path.replace(":", "/").replace(".", "/"))

    def __repr__(self) -> str:
        return f"SecretRef({self.path!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and (self.path, self.value) == (other.path, other.value)

    def __hash__(self) -> int:
        return hash(self.path)


def _require_secret(value: Any) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    raise ValueError(
        "must be stored as a secret: set it with `pulumi config set --secret --path '<key>' <value>`"
    )


Secret = Annotated[
    SecretRef,
    BeforeValidator(_require_secret),
    PlainSerializer(lambda s: s.placeholder, return_type=str),
]


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"{format_duration(value)} must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive_duration)]


def _between(low: float, high: float):
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"{value} is not between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


def _at_least(low: float):
    def check(value: float) -> float:
        if value < low:
            raise ValueError(f"{value} is below the minimum of {low:g}")
        return value

    return AfterValidator(check)


def _exclusive_ratio(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"{value} is not a ratio strictly between 0 and 1")
    return value


#: The charts rollout installs (rollout/model/versions.py CHARTS).
ChartName = Literal["kube-prometheus-stack", "prometheus-blackbox-exporter", "prometheus-pushgateway"]
Percentage = Annotated[int, _between(0, 100)]
Ratio = Annotated[float, AfterValidator(_exclusive_ratio)]
PositiveSeconds = Annotated[float, AfterValidator(lambda v: _positive(v))]
Count = Annotated[int, _at_least(1)]
NonNegativeCount = Annotated[int, _at_least(0)]


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"{value} must be greater than 0")
    return value


def _timestamp(value: Any) -> datetime:
    # Text only: a number would be read as seconds since 1970, which no stack file means.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{_brief(value)} is not a time; write it as text in UTC, e.g. \"2026-11-20T09:00:00Z\"")
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not a time; write it in UTC, e.g. 2026-11-20T09:00:00Z") from None
    return parsed


def _brief(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone; write it in UTC, e.g. 2026-11-20T09:00:00Z")
    return in_range(value)


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp),
    AfterValidator(_utc),
    PlainSerializer(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
]

#: How far ahead of this machine's clock a history entry may be (clocks differ).
CLOCK_SKEW = timedelta(minutes=5)

# Kubernetes' own rules (apimachinery's IsDNS1123Label and IsDNS1035Label), matched
# against the whole value: re's "$" would accept a final newline.
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_LABEL_MAX = 63


def _dns_label(value: str) -> str:
    if not _DNS_1123_LABEL.fullmatch(value) or len(value) > DNS_LABEL_MAX:
        raise ValueError(
            f"{value[:80]!r} is not a DNS label: lower-case letters, digits and '-', starting and ending with a "
            f"letter or digit, at most {DNS_LABEL_MAX} characters"
        )
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]

#: Pulumi's rule for stack names (the name is part of stacks/Pulumi.<name>.yaml).
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _stack_name(value: str) -> str:
    if not STACK_NAME.fullmatch(value):
        raise ValueError("must be a stack name: 1 to 100 letters, digits, '_', '.' or '-'")
    return value


StackName = Annotated[str, AfterValidator(_stack_name)]

#: The suffixes a service's name is rendered with: the Services (and Deployments) of its tracks.
SERVICE_NAME_SUFFIXES = ("-stable", "-canary")
SERVICE_NAME_MAX = DNS_LABEL_MAX - max(map(len, SERVICE_NAME_SUFFIXES))


def _service_name(value: str) -> str:
    # Kubernetes Service names are DNS-1035 labels: a letter first.
    if not _DNS_1035_LABEL.fullmatch(value) or len(value) > SERVICE_NAME_MAX:
        raise ValueError(
            f"{value[:80]!r} is not a service name: it names the Kubernetes Services <name>-stable and <name>-canary, "
            f"DNS-1035 labels: a lower-case letter first, then lower-case letters, digits and '-', not ending in '-', "
            f"at most {DNS_LABEL_MAX} characters with the suffix (so at most {SERVICE_NAME_MAX})"
        )
    return value


ServiceName = Annotated[str, AfterValidator(_service_name)]

#: kube-prometheus-stack cuts its fullnameOverride to 26 characters; names rendered from it
#: (``<release>-pushgateway``, ``<release>-grafana``) are Service names, DNS-1035 labels.
RELEASE_NAME_MAX = 26


def _release_name(value: str) -> str:
    if not _DNS_1035_LABEL.fullmatch(value) or len(value) > RELEASE_NAME_MAX:
        raise ValueError(
            f"{value[:80]!r} is not a release name: a lower-case letter first, then lower-case letters, digits and "
            f"'-', not ending in '-', at most {RELEASE_NAME_MAX} characters (kube-prometheus-stack cuts longer ones)"
        )
    return value


ReleaseName = Annotated[str, AfterValidator(_release_name)]

# Prometheus' metric name rule (the one promtool and every PromQL parser accept unquoted);
# names starting with "__" are reserved for Prometheus itself.
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _metric_name(value: str) -> str:
    if not _METRIC_NAME.fullmatch(value) or value.startswith("__"):
        raise ValueError(
            f"{value[:80]!r} is not a Prometheus metric name: letters, digits, '_' and ':', not starting with a "
            "digit or '__'"
        )
    return value


MetricName = Annotated[str, AfterValidator(_metric_name)]

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")


def _quantity(value: str) -> str:
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 250m, 512Mi or 50Gi")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]


class Model(BaseModel):
    """Base of every config model: frozen, camelCase keys, unknown keys refused."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=False,
        arbitrary_types_allowed=True,
        # Strict: a boolean is not a number, a number is not text, "25" is not 25;
        # what the YAML says is what the program gets.
        strict=True,
        # The docstring under each field is its description: docs/configuration.md
        # is generated from it, so a knob cannot go undocumented.
        use_attribute_docstrings=True,
    )


# --- targets -------------------------------------------------------------------


class GatewayRef(Model):
    """The Gateway API Gateway that the services' HTTPRoutes attach to."""

    name: str
    """Name of the Gateway."""
    namespace: str
    """Namespace of the Gateway."""
    section_name: str | None = None
    """The listener of the Gateway to attach to; unset attaches to all listeners."""


class KubernetesSettings(Model):
    """Where and how the Kubernetes stacks deploy."""

    namespace: DnsLabel = "rollout"
    """Namespace for everything rollout declares."""
    render_yaml_to_directory: str | None = None
    """When set, the Kubernetes provider writes manifests to this folder instead of applying them
    to a cluster (the ``dev`` stack). Relative to the project.
    """
    context: str | None = None
    """kubeconfig context to use; unset uses the current context."""
    gateway: GatewayRef
    """The Gateway the services' HTTPRoutes attach to."""
    skip_await: bool = False
    """Do not wait for the objects to become ready (the provider's ``pulumi.com/skipAwait``
    annotation on every object). For clusters that run no workloads (a test API server without
    nodes); never on a real cluster, where waiting is what makes a failed rollout fail the ``up``.
    """


class DockerPorts(Model):
    """Host ports the ``local`` stack publishes on 127.0.0.1."""

    prometheus: int = 9090
    """Prometheus' UI and API."""
    alertmanager: int = 9093
    """Alertmanager's UI and API."""
    grafana: int = 3000
    """Grafana's UI and API."""
    pushgateway: int = 9091
    """The Pushgateway CI pushes test results to."""
    service_stable: int = 8080
    """The service's stable track."""
    service_canary: int = 8081
    """The service's canary track."""


class DockerSettings(Model):
    """The ``local`` target: containers on one Docker network."""

    network: DnsLabel = "rollout"
    """The Docker network every container joins."""
    host: str | None = None
    """Docker daemon to talk to; unset uses DOCKER_HOST or the local socket."""
    ports: DockerPorts = DockerPorts()
    """Host ports, published on 127.0.0.1 only."""


# --- monitoring ----------------------------------------------------------------


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


_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _label_key(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if not _LABEL_NAME.fullmatch(name) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
        raise ValueError(
            f"{value[:80]!r} is not a Kubernetes label key: an optional DNS prefix and '/', then at most 63 letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return value


def _label_value(value: str) -> str:
    if value and not _LABEL_NAME.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r} is not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
_HOST_PORT = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?:[0-9]{1,5}")


def _host_port(value: str) -> str:
    if not _HOST_PORT.fullmatch(value) or not 0 < int(value.rpartition(":")[2]) < 65536:
        raise ValueError(f"{value[:80]!r} is not host:port, e.g. blackbox-exporter.monitoring.svc:9115")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]


class ExistingMonitoringSettings(Model):
    """How the stack plugs into a Prometheus Operator already running in the cluster
    (``monitoring.install: false``), e.g. a kube-prometheus-stack the platform team runs.

    The stack then deploys only what is its own: its PrometheusRules, ServiceMonitors and
    Probes, its routing as an ``AlertmanagerConfig`` (with its credentials in a Secret), and a
    blackbox exporter for its Probes. docs/operations.md says what the existing Prometheus and
    Alertmanager must select and how to check it.
    """

    labels: dict[LabelKey, LabelValue] | None = None
    """Labels put on the stack's PrometheusRules, ServiceMonitors, Probes and AlertmanagerConfig,
    so that the existing operator's selectors (``ruleSelector``, ``serviceMonitorSelector``,
    ``probeSelector``, ``alertmanagerConfigSelector``) pick them up. Unset: ``release:
    <monitoring.releaseName>``, which kube-prometheus-stack's Prometheus selects by default.
    """
    namespace: DnsLabel = "monitoring"
    """Namespace the existing Prometheus and Alertmanager run in: the relay's NetworkPolicy lets
    their pods in from there.
    """
    matcher_strategy: Literal["OnNamespace", "None"] = "OnNamespace"
    """The existing Alertmanager's ``alertmanagerConfigMatcherStrategy.type``. ``OnNamespace`` (the
    operator's default) adds a ``namespace="<this stack's namespace>"`` matcher to the stack's
    routes and inhibit rules, so they see only the stack's own alerts (every rule of the stack
    carries its namespace label). ``None`` adds nothing; set it only if the Alertmanager does so.
    """
    blackbox_exporter: HostPort | None = None
    """``host:port`` of a blackbox exporter already running (with an ``http_2xx`` module) that
    the stack's Probes use. Unset: the program deploys one in the stack's namespace.
    """


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
    fast_trigger_factor: Annotated[float, _at_least(2)] = 10.0
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


# --- alerting ------------------------------------------------------------------


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


def _digest_image(value: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^\s@]+@sha256:[0-9a-f]{64}", value):
        raise ValueError(f"{value!r} is not an image pinned by digest (<image>@sha256:<64 hex digits>)")
    return value


def _repository(value: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", value):
        raise ValueError(f"{value!r} is not OWNER/NAME")
    return value


class RelaySettings(Model):
    """The relay (``rollout relay``) the program deploys beside Alertmanager on Kubernetes stacks."""

    image: Annotated[str, AfterValidator(_digest_image)]
    """The relay's image, pinned by digest (``ghcr.io/<org>/rollout-relay@sha256:...``), as the
    Publish relay image workflow prints it.
    """
    repository: Annotated[str, AfterValidator(_repository)]
    """OWNER/NAME of the repository whose rollback workflow the dispatch starts."""
    forge_url: str = "https://api.github.com"
    """The forge's REST API (GitHub Enterprise: ``https://<host>/api/v3``)."""
    replicas: Annotated[int, _between(1, 5)] = 2
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
    generated admin password.
    """


# --- services and rollout ------------------------------------------------------


def _image(value: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a container image reference")
    return value


Image = Annotated[str, AfterValidator(_image)]


class TrackSettings(Model):
    """The canary track of a service."""

    image: Image
    """The release being rolled out: an image with a pinned tag or digest (a digest identifies the
    release when given); the policy pack refuses ``latest``. Change it with ``rollout release``: a
    new release starts a new rollout at 0 %.
    """
    replicas: NonNegativeCount = 2
    """The fewest pods the canary runs. At weight w it runs
    ``max(replicas, ceil(stable.replicas * w / 100))``, so it can carry its share at every stage.
    """


class StableTrackSettings(Model):
    """The stable track of a service."""

    image: Image
    """Image with a pinned tag or digest. It changes only to a release whose rollout completed in
    this stack (``rollout promote``) or back to ``previousImage`` (a revert).
    """
    replicas: NonNegativeCount = 2
    """Pods (or containers) of this track; it keeps them all at every weight."""
    previous_image: Image | None = None
    """The stable image before the last promote, written by ``rollout promote``: setting ``image``
    back to it is a revert.
    """


class CustomStage(Model):
    weight: Annotated[int, _between(0, 100)]
    """The canary's traffic weight in this stage, percent."""
    soak: PositiveDuration
    """Minimum time in this stage before the next may begin."""


class HistoryEntry(Model):
    """One stage entered: its weight, when, the release and the plan. A rollback carries its reason."""

    weight: Percentage
    """The canary's traffic weight from this entry on, percent."""
    started_at: Timestamp
    """When the stage was recorded (UTC). The soak counts from when the stage took traffic, which
    the gate evidence measures (see docs/operations.md).
    """
    release: Image | None = None
    """The canary's image in this stage (written by ``rollout advance``, ``release``, ``promote``
    and ``rollback``); unset in entries written by hand.
    """
    plan: Literal["safe", "fast", "instant", "custom"] | None = None
    """The plan this stage was entered under; unset means the service's current plan. A plan may
    change mid-rollout: entries keep the plan they were written with.
    """
    reason: str | None = None
    """Why (required by ``rollout rollback``, optional otherwise)."""


class RolloutSettings(Model):
    """The service's rollout: its plan and the append-only history of stages."""

    plan: Literal["safe", "fast", "instant", "custom"] = "safe"
    """``safe`` (7 days), ``fast`` (3 days), ``instant`` or ``custom``."""
    stages: list[CustomStage] | None = None
    """The stages of a ``custom`` plan; only with plan: custom."""
    history: list[HistoryEntry] = Field(min_length=1)
    """Stages entered, oldest first; the last entry is the current weight. Append only."""

    @model_validator(mode="after")
    def _plan_and_history(self, info: ValidationInfo) -> "RolloutSettings":
        if self.plan == "custom":
            if not self.stages:
                raise KeyedError(("stages",), "is required with plan: custom (a list of weight and soak)")
            weights = [s.weight for s in self.stages]
            if weights[0] != 0 or any(b <= a for a, b in zip(weights, weights[1:])):
                raise KeyedError(
                    ("stages",), f"{weights} must start at 0 and be strictly increasing"
                )
            if weights[-1] != 100:
                raise KeyedError(("stages",), f"{weights} must end at 100")
        elif self.stages is not None:
            raise KeyedError(("stages",), f"is only for plan: custom; plan {self.plan} has its own")
        for index, entry in enumerate(self.history):
            allowed = self.entry_weights(entry)
            if entry.weight not in allowed:
                written = entry.plan or self.plan
                raise KeyedError(
                    ("history", index, "weight"),
                    f"{entry.weight} is not a stage of plan {written}; "
                    f"allowed: {', '.join(map(str, allowed))}",
                )
        # The loader says what the present is (rollout.load.clock): a rehearsal's
        # --now counts as the present too, and a rollback tolerates the future.
        context = info.context or {}
        latest_allowed = context.get("present", datetime.now(timezone.utc)) + CLOCK_SKEW
        for index, entry in enumerate(self.history):
            if entry.started_at > latest_allowed and not context.get("tolerate_future", False):
                raise KeyedError(
                    ("history", index, "startedAt"),
                    f"{entry.started_at:%Y-%m-%dT%H:%M:%SZ} is in the future; a stage is recorded when it begins",
                )
        for index in range(1, len(self.history)):
            if self.history[index].started_at < self.history[index - 1].started_at:
                raise KeyedError(
                    ("history", index, "startedAt"),
                    f"is earlier than history[{index - 1}].startedAt; "
                    "the history is append-only and in time order",
                )
        return self

    @property
    def plan_model(self) -> Plan:
        if self.plan == "custom":
            return Plan("custom", tuple(Stage(s.weight, s.soak) for s in self.stages or ()))
        return BUILTIN_PLANS[self.plan]

    def entry_weights(self, entry: HistoryEntry) -> tuple[int, ...]:
        """The weights an entry may have: the stages of the plan it was written with.

        An entry that names its plan is a stage of that plan (a ``custom`` one of
        this service's stages). An entry without a plan may be a stage of the
        current plan or of any built-in plan: it may predate a plan change.
        """
        if entry.plan is not None and entry.plan != "custom":
            return BUILTIN_PLANS[entry.plan].weights
        if entry.plan == "custom":
            return tuple(s.weight for s in self.stages or ()) or tuple(range(101))
        known = {*self.plan_model.weights}
        for plan in BUILTIN_PLANS.values():
            known.update(plan.weights)
        return tuple(sorted(known))

    @property
    def current(self) -> HistoryEntry:
        return self.history[-1]

    @property
    def weight(self) -> int:
        return self.current.weight


class ProbeSettings(Model):
    path: str = "/healthz"
    """HTTP path of the service's health endpoint (readiness, liveness and blackbox probes)."""
    period_seconds: Count = 10
    """Seconds between probes; the blackbox probe uses the scrape interval."""


_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def _hostname(value: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a hostname: lowercase DNS labels separated by dots, optionally starting "
            "with '*.', e.g. genesis.example.com or *.example.com (no port, no IP address)"
        )
    return value


class PathMatch(Model):
    """A request path to match (Gateway API ``HTTPPathMatch``)."""

    type: Literal["PathPrefix", "Exact", "RegularExpression"] = "PathPrefix"
    """``PathPrefix`` (by whole path segments), ``Exact`` or ``RegularExpression``."""
    value: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^/")] = "/"
    """The path, starting with ``/``."""


class RouteMatch(Model):
    """One match of the service's HTTPRoute: a request matching any one of them is routed."""

    path: PathMatch = PathMatch()
    """The request path."""
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] | None = None
    """Only requests of this HTTP method; unset matches every method."""


class RouteSettings(Model):
    """Which requests on the shared Gateway reach the service (Kubernetes only)."""

    hostnames: list[Annotated[str, AfterValidator(_hostname)]] = []
    """Host names the service answers (the HTTPRoute's ``hostnames``). Empty takes every host the
    Gateway's listener accepts: on a shared Gateway, set them; ``rollout check`` warns outside development."""
    matches: Annotated[list[RouteMatch], Field(min_length=1, max_length=64)] = [RouteMatch()]
    """Requests routed to the service; the default is every path (``PathPrefix /``)."""


class ServiceSettings(Model):
    """A service shipped with a stable and a canary track."""

    name: ServiceName
    """Service name: a DNS-1035 label of at most 56 characters (it is rendered with -stable and -canary), used in every object name and as the ``service`` label."""
    port: Annotated[int, _between(1, 65535)] = 8080
    """Port the service listens on and exposes metrics on."""
    stable: StableTrackSettings
    """The stable track."""
    canary: TrackSettings
    """The canary track: the release being rolled out."""
    resources: Resources
    """Requests and limits of each track's containers."""
    health: ProbeSettings = ProbeSettings()
    """Health checks."""
    rollout: RolloutSettings
    """The rollout plan and its history."""
    route: RouteSettings = RouteSettings()
    """The HTTPRoute's host names and matches on the shared Gateway."""

    def canary_replicas(self) -> int:
        """The canary's replicas at the current weight (see :func:`rollout.model.releases.canary_replicas`)."""
        return canary_replicas(self.rollout.weight, self.stable.replicas, self.canary.replicas)


# --- feature flags -------------------------------------------------------------

_FLAG_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


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


FLAG_STRATEGIES = ("all_at_once", "percentage", "progressive", "canary")


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


# --- the stack -----------------------------------------------------------------


class StackConfig(Model):
    """Everything under ``config:`` in stacks/Pulumi.<stack>.yaml (``rollout:`` keys)."""

    target: Literal["docker", "kubernetes"]
    """``docker`` (the local stack) or ``kubernetes``."""
    tier: Literal["development", "staging", "production"]
    """Drives the conservative defaults and which policies are mandatory."""
    promotes_from: StackName | None = None
    """The stack that must complete a stage before this one may enter it (a stack name)."""
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
            if not _FLAG_KEY.fullmatch(key):
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
