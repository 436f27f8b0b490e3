"""The config's field types: each a type plus the validator that says, in one line, what is allowed.

Secrets (:class:`SecretRef`), durations, times, counts and ratios, the names
Kubernetes and Prometheus constrain, and :class:`Model`, the base of every
settings model. The settings areas (targets, monitoring, alerting, services,
flags) build on these; nothing here knows a settings area.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from rollout.model import conventions
from rollout.model.durations import format_duration, parse_duration
from rollout.model.time import format_time, in_range, read_iso


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


def between(low: float, high: float):
    """A validator: the value lies in [low, high]."""
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"{value} is not between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


def at_least(low: float):
    """A validator: the value is ``low`` or more."""
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
Percentage = Annotated[int, between(0, 100)]
Ratio = Annotated[float, AfterValidator(_exclusive_ratio)]
PositiveSeconds = Annotated[float, AfterValidator(lambda v: _positive(v))]
Count = Annotated[int, at_least(1)]
NonNegativeCount = Annotated[int, at_least(0)]


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
        parsed = read_iso(value)
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
    PlainSerializer(format_time, return_type=str),
]

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
        # The docstring under each field is its description: docs/configuration.md is
        # generated from it (rollout.build.reference reads it from the source, so the
        # models do not parse their own source at every import), and a knob cannot go
        # undocumented.
    )


