"""Alertmanager's webhook payload (version 4), as a typed model, and the rollback triggers in it.

The relay reads a body in two steps, each bounded:

1. :func:`rollout.model.jsontext.loads`: at most :data:`MAX_BODY_BYTES`, nested at
   most :data:`MAX_DEPTH` levels (the payload has four), numbers a float holds;
   the nesting is scanned before the parser runs, so 200,000 nested arrays never
   reach it.
2. :class:`Payload`: the fields Alertmanager writes (``version``, ``groupKey``,
   ``status``, ``receiver``, ``groupLabels``, ``commonLabels``,
   ``commonAnnotations``, ``externalURL``, ``alerts`` with ``status``, ``labels``,
   ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``,
   ``fingerprint``), strictly typed: label and annotation maps hold strings only,
   times are RFC 3339, the fingerprint is a short token, and every map, list and
   string is bounded. Keys Alertmanager may add later are ignored.

Then :func:`triggers` picks the firing alerts labelled ``rollback="true"``. Their
``service`` label must be a service name by the stack files' rule
(:data:`rollout.model.config.ServiceName`) and one of the stack's services; a
``stack`` label (Prometheus' external label) must name this stack. Anything else
is :class:`BadPayload`: the relay answers 400 and dispatches nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from rollout.model import conventions as c
from rollout.model import jsontext
from rollout.model.config import ServiceName, StackName

#: The largest webhook body read (Alertmanager's payload for a group of some hundred alerts).
MAX_BODY_BYTES = 1024 * 1024
#: The deepest nesting read: the payload has four levels (payload, alerts, alert, labels).
MAX_DEPTH = 8
#: Alerts in one notification, at most.
MAX_ALERTS = 1000
#: Labels or annotations of one alert or group, at most.
MAX_PAIRS = 128

_Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_Value = Annotated[str, StringConstraints(max_length=16 * 1024)]
_Pairs = Annotated[dict[_Name, _Value], Field(max_length=MAX_PAIRS)]
# RFC 3339 as Alertmanager writes it (Go's time.Time, nanoseconds at most).
_Time = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")]
_Text = Annotated[str, StringConstraints(max_length=4096)]
# Prometheus' rule for an alert's name, which becomes part of the dispatch's reason.
_AlertName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Alert(_Strict):
    """One alert of the notification."""

    status: Literal["firing", "resolved"]
    labels: _Pairs
    annotations: _Pairs = {}
    startsAt: _Time  # noqa: N815 - Alertmanager's key
    endsAt: _Time | None = None  # noqa: N815
    generatorURL: _Text = ""  # noqa: N815
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_-]{1,64}$")] | None = None


class Payload(_Strict):
    """Alertmanager's webhook payload, version 4."""

    version: Literal["4"]
    groupKey: _Text = ""  # noqa: N815
    truncatedAlerts: Annotated[int, Field(ge=0)] = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: _Text = ""
    groupLabels: _Pairs = {}  # noqa: N815
    commonLabels: _Pairs = {}  # noqa: N815
    commonAnnotations: _Pairs = {}  # noqa: N815
    externalURL: _Text = ""  # noqa: N815
    alerts: Annotated[list[Alert], Field(max_length=MAX_ALERTS)]


class BadPayload(ValueError):
    """A webhook body that is not Alertmanager's version 4 payload, or names what this stack has not."""


@dataclass(frozen=True)
class Trigger:
    """One firing rollback trigger of a webhook payload."""

    #: Identifies the alert's firing: its fingerprint (or labels) and start time.
    key: str
    service: str
    alertname: str
    starts_at: str

    def reason(self) -> str:
        return f"{self.alertname} firing since {self.starts_at}"

    def client_payload(self, stack: str) -> dict[str, str]:
        return {"stack": stack, "service": self.service, "reason": self.reason()}


_SERVICE_NAME: TypeAdapter = TypeAdapter(ServiceName)
_STACK_NAME: TypeAdapter = TypeAdapter(StackName)
_ALERT_NAME: TypeAdapter = TypeAdapter(_AlertName)


def _first_error(err: ValidationError) -> str:
    first = err.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the body"
    return f"{where}: {first['msg']}"


def parse(body: bytes) -> Payload:
    """The payload in ``body``; :class:`BadPayload` (one line) for anything else."""
    try:
        document = jsontext.loads(body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_DEPTH)
    except jsontext.JsonRefused as err:
        raise BadPayload(f"the body is not a webhook payload: {err}") from None
    if not isinstance(document, dict):
        raise BadPayload("the body is not a JSON object")
    if document.get("version") != "4":
        raise BadPayload(f"version {str(document.get('version'))[:20]!r} is not Alertmanager's webhook version 4")
    try:
        return Payload.model_validate(document)
    except ValidationError as err:
        raise BadPayload(f"not Alertmanager's webhook payload: {_first_error(err)}") from None


def _name_problem(adapter: TypeAdapter, value: str) -> str | None:
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        return err.errors(include_url=False, include_input=False)[0]["msg"].removeprefix("Value error, ")
    return None


def triggers(payload: Payload | object, stack: str | None = None, services: Iterable[str] | None = None) -> list[Trigger]:
    """The firing rollback triggers of a payload, in its order.

    ``payload`` is a :class:`Payload`, or a decoded document (validated here).
    With ``stack`` and ``services``, a trigger's ``stack`` label must be ``stack``
    and its ``service`` one of ``services``. Raises :class:`BadPayload`. A trigger
    without a ``service`` label cannot name what to roll back: it is left out (the
    caller logs it through :func:`unnamed`).
    """
    if not isinstance(payload, Payload):
        payload = parse(json.dumps(payload).encode()) if isinstance(payload, (dict, list)) else parse(b"null")
    known = set(services) if services is not None else None
    found: list[Trigger] = []
    for alert in payload.alerts:
        labels = alert.labels
        if alert.status != "firing" or labels.get(c.ROLLBACK_LABEL) != "true":
            continue
        service = labels.get(c.SERVICE_LABEL)
        if not service:
            continue
        alertname = labels.get("alertname", "UnnamedAlert")
        why = _name_problem(_ALERT_NAME, alertname)
        if why:
            raise BadPayload(f"a rollback trigger's alertname {alertname[:80]!r} is not an alert name")
        why = _name_problem(_SERVICE_NAME, service)
        if why:
            raise BadPayload(f"rollback trigger {alertname}: label {c.SERVICE_LABEL}: {why}")
        if known is not None and service not in known:
            raise BadPayload(f"rollback trigger {alertname}: service {service!r} is not a service of stack {stack} "
                             f"(services: {', '.join(sorted(known)) or 'none'})")
        named_stack = labels.get("stack")
        if named_stack is not None:
            why = _name_problem(_STACK_NAME, named_stack)
            if why:
                raise BadPayload(f"rollback trigger {alertname}: label stack: {why}")
            if stack is not None and named_stack != stack:
                raise BadPayload(f"rollback trigger {alertname}: it is for stack {named_stack!r}, this relay serves {stack!r}")
        identity = alert.fingerprint or json.dumps(labels, sort_keys=True)
        found.append(Trigger(f"{identity}@{alert.startsAt}", service, alertname, alert.startsAt))
    return found


def unnamed(payload: Payload) -> list[str]:
    """The alert names of firing rollback triggers without a ``service`` label (nothing to roll back)."""
    return [
        alert.labels.get("alertname", "UnnamedAlert")[:200]
        for alert in payload.alerts
        if alert.status == "firing" and alert.labels.get(c.ROLLBACK_LABEL) == "true" and not alert.labels.get(c.SERVICE_LABEL)
    ]
