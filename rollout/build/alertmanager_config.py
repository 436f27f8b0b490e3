"""The stack's routing as the Prometheus operator's own resource, for an Alertmanager
already in the cluster (``monitoring.install: false``).

The ``AlertmanagerConfig`` (monitoring.coreos.com/v1alpha1) is translated from the
very document the chart's Alertmanager gets (:func:`rollout.build.alertmanager.alertmanager_config`):
the same receivers, routes P0–P4, rollback webhook (with the relay's bearer token),
heartbeat and inhibit rules. Every credential is a key of one Secret in the stack's
namespace, which the resource references (``secretKeySelector``); the program fills
it from Pulumi secrets, ``rollout render`` with placeholders.

The operator does not take the resource as it is: it converts it into a part of
the Alertmanager's configuration (pkg/alertmanager/amcfg.go of prometheus-operator
0.93). :func:`converted` does the same, so the tests can load the result in the real
Alertmanager and amtool, and ``rollout verify`` knows what the loaded config holds:

- every receiver name (and every route's) becomes ``<namespace>/<name>/<receiver>``;
- the resource's top route becomes a child of the Alertmanager's root route, placed
  before the root's own children, with ``continue: true``, and (matcher strategy
  ``OnNamespace``, the default) the matcher ``namespace="<namespace>"``;
- every inhibit rule gets that matcher on both its source and its target;
- each secret reference is replaced by the Secret's value.

So only alerts labelled with the stack's namespace reach its routes: every rule of
the stack sets that label (rollout.model.scope).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from rollout.build.alertmanager import Reveal, alertmanager_config, placeholders
from rollout.model import conventions as c
from rollout.model.config import SecretRef, StackConfig

API_VERSION = "monitoring.coreos.com/v1alpha1"
KIND = "AlertmanagerConfig"
#: The resource's name, and the Secret holding the credentials it references.
NAME = "rollout"
SECRET_NAME = "rollout-alertmanager"
#: The label the operator's namespace matcher reads.
NAMESPACE_LABEL = "namespace"

_MARK = "\x00secret:"
_MATCHER = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)"(.*)"$')
_ROUTE_KEYS = {"group_by": "groupBy", "group_wait": "groupWait", "group_interval": "groupInterval", "repeat_interval": "repeatInterval"}
#: Alertmanager's field -> the resource's, per integration.
_FIELDS = {
    "webhook_configs": ("webhookConfigs", {"url": "url", "send_resolved": "sendResolved", "http_config": "httpConfig"}),
    "pagerduty_configs": (
        "pagerdutyConfigs",
        {"routing_key": "routingKey", "severity": "severity", "description": "description", "send_resolved": "sendResolved"},
    ),
    "slack_configs": (
        "slackConfigs",
        {"api_url": "apiURL", "channel": "channel", "send_resolved": "sendResolved", "title": "title", "text": "text"},
    ),
    "email_configs": (
        "emailConfigs",
        {
            "to": "to", "from": "from", "smarthost": "smarthost", "require_tls": "requireTLS",
            "send_resolved": "sendResolved", "auth_username": "authUsername", "auth_password": "authPassword",
        },
    ),
}
#: Fields whose secret goes in a field of its own: a webhook's url is plain text, its urlSecret a reference.
_SECRET_FIELD = {("webhook_configs", "url"): "urlSecret"}


def secret_key(secret: SecretRef) -> str:
    """The Secret key holding one credential: its name under ``rollout:secrets``."""
    return secret.path.rsplit(".", 1)[-1]


def _marked(secret: SecretRef, is_url: bool) -> str:
    return f"{_MARK}{secret_key(secret)}"


def secret_values(config: StackConfig, reveal: Reveal = placeholders) -> dict[str, str]:
    """The Secret's data: every credential the routing uses, revealed by ``reveal``."""
    values: dict[str, str] = {}
    _walk(alertmanager_config(config, reveal=_marked), lambda key: values.setdefault(key, ""))
    secrets = {secret_key(s): s for s in (getattr(config.secrets, name) for name in type(config.secrets).model_fields) if s is not None}
    return {key: reveal(secrets[key], _is_url(key)) for key in sorted(values)}


def _is_url(key: str) -> bool:
    return key.endswith("Url")


def _walk(value: Any, seen) -> None:
    if isinstance(value, str) and value.startswith(_MARK):
        seen(value[len(_MARK):])
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, seen)
    elif isinstance(value, list):
        for item in value:
            _walk(item, seen)


def _reference(value: Any) -> Any:
    """A marked secret as a secretKeySelector; anything else as it is."""
    if isinstance(value, str) and value.startswith(_MARK):
        return {"name": SECRET_NAME, "key": value[len(_MARK):]}
    if isinstance(value, dict):
        return {key: _reference(item) for key, item in value.items()}
    return value


def matcher(text: str) -> dict[str, str]:
    """``name="value"`` (as the routing writes matchers) as the resource's matcher object."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"not a matcher of the form name<op>\"value\": {text!r}")
    name, op, value = found.groups()
    item = {"name": name, "value": json.loads(f'"{value}"')}
    # "=" is the operator's default: left out, since a bare "=" is YAML 1.1's "value"
    # type, which some YAML readers (PyYAML) cannot read back from a written manifest.
    if op != "=":
        item["matchType"] = op
    return item


def _route(route: Mapping[str, Any]) -> dict:
    out: dict[str, Any] = {"receiver": route["receiver"]}
    for key, camel in _ROUTE_KEYS.items():
        if key in route:
            out[camel] = route[key]
    if route.get("matchers"):
        out["matchers"] = [matcher(m) for m in route["matchers"]]
    if route.get("continue"):
        out["continue"] = True
    if route.get("routes"):
        out["routes"] = [_route(child) for child in route["routes"]]
    return out


def _receiver(receiver: Mapping[str, Any]) -> dict:
    out: dict[str, Any] = {"name": receiver["name"]}
    for integration, (camel, fields) in _FIELDS.items():
        for item in receiver.get(integration) or []:
            converted: dict[str, Any] = {}
            for key, value in item.items():
                if key not in fields:
                    raise ValueError(f"{integration}.{key} has no AlertmanagerConfig field here")
                secret_field = _SECRET_FIELD.get((integration, key))
                if secret_field and isinstance(value, str) and value.startswith(_MARK):
                    converted[secret_field] = _reference(value)
                else:
                    converted[fields[key]] = _reference(value)
            out.setdefault(camel, []).append(converted)
    return out


def alertmanager_config_resource(config: StackConfig) -> dict:
    """The stack's routing as an ``AlertmanagerConfig`` in its namespace, credentials referenced."""
    document = alertmanager_config(config, reveal=_marked)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": NAME, "namespace": config.kubernetes.namespace, "labels": config.selector_labels},
        "spec": {
            "route": _route(document["route"]),
            "receivers": [_receiver(r) for r in document["receivers"]],
            "inhibitRules": [
                {
                    "sourceMatch": [matcher(m) for m in rule["source_matchers"]],
                    "targetMatch": [matcher(m) for m in rule["target_matchers"]],
                    "equal": list(rule["equal"]),
                }
                for rule in document["inhibit_rules"]
            ],
        },
    }


def credentials_secret(config: StackConfig, values: Any) -> dict:
    """The Secret the resource's references point at; ``values`` is :func:`secret_values`
    (placeholders when rendered, a Pulumi secret Output when deployed)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": config.kubernetes.namespace,
            "labels": dict([c.MANAGED_BY_LABEL, c.PART_OF_LABEL]),
        },
        "type": "Opaque",
        "stringData": values,
    }


# --- as the operator converts it -----------------------------------------------------------


def _matcher_text(item: Mapping[str, Any]) -> str:
    # Go's Matcher.String(): name, match type, strconv.Quote(value).
    return f"{item['name']}{item.get('matchType') or '='}{json.dumps(item.get('value', ''), ensure_ascii=False)}"


def _prefixed(name: str, namespace: str, resource: str) -> str:
    return f"{namespace}/{resource}/{name}" if name else ""


def _converted_route(route: Mapping[str, Any], namespace: str, resource: str) -> dict:
    out: dict[str, Any] = {"receiver": _prefixed(route["receiver"], namespace, resource)}
    for key, camel in _ROUTE_KEYS.items():
        if camel in route:
            out[key] = route[camel]
    if route.get("matchers"):
        out["matchers"] = [_matcher_text(m) for m in route["matchers"]]
    if route.get("continue"):
        out["continue"] = True
    if route.get("routes"):
        out["routes"] = [_converted_route(child, namespace, resource) for child in route["routes"]]
    return out


def _resolved(value: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and set(value) == {"name", "key"} and value["name"] == SECRET_NAME:
        return secrets[value["key"]]
    if isinstance(value, dict):
        return {key: _resolved(item, secrets) for key, item in value.items()}
    return value


def _converted_receiver(receiver: Mapping[str, Any], namespace: str, resource: str, secrets: Mapping[str, str]) -> dict:
    out: dict[str, Any] = {"name": _prefixed(receiver["name"], namespace, resource)}
    for integration, (camel, fields) in _FIELDS.items():
        back = {v: k for k, v in fields.items()}
        for item in receiver.get(camel) or []:
            converted = {}
            for key, value in item.items():
                name = "url" if (integration, "url") in _SECRET_FIELD and key == _SECRET_FIELD[(integration, "url")] else back[key]
                converted[name] = _resolved(value, secrets)
            out.setdefault(integration, []).append(converted)
    return out


def converted(resource: Mapping[str, Any], secrets: Mapping[str, str], strategy: str = "OnNamespace") -> dict:
    """The part of the Alertmanager configuration the operator makes of ``resource``:
    ``{"route": ..., "receivers": [...], "inhibit_rules": [...]}``, secrets resolved from ``secrets``."""
    namespace, name = resource["metadata"]["namespace"], resource["metadata"]["name"]
    spec = resource["spec"]
    scope = [f'{NAMESPACE_LABEL}="{namespace}"'] if strategy == "OnNamespace" else []
    route = _converted_route(spec["route"], namespace, name)
    route["matchers"] = [*route.get("matchers", []), *scope]
    if not route["matchers"]:
        del route["matchers"]
    route["continue"] = True
    inhibit = []
    for rule in spec.get("inhibitRules") or []:
        source = [_matcher_text(m) for m in rule.get("sourceMatch") or []]
        target = [_matcher_text(m) for m in rule.get("targetMatch") or []]
        for matcher_text in scope:
            source += [] if matcher_text in source else [matcher_text]
            target += [] if matcher_text in target else [matcher_text]
        inhibit.append({"source_matchers": source, "target_matchers": target, "equal": list(rule.get("equal") or [])})
    return {
        "route": route,
        "receivers": [_converted_receiver(r, namespace, name, secrets) for r in spec.get("receivers") or []],
        "inhibit_rules": inhibit,
    }


def merged(base: Mapping[str, Any], *parts: Mapping[str, Any]) -> dict:
    """An Alertmanager's configuration (``base``) with the converted resources added, as the
    operator adds them: their routes first among the root's children, their receivers and
    inhibit rules after the base's."""
    document = json.loads(json.dumps(base))
    document["route"]["routes"] = [part["route"] for part in parts] + list(document["route"].get("routes") or [])
    document["receivers"] = list(document.get("receivers") or []) + [r for part in parts for r in part["receivers"]]
    document["inhibit_rules"] = list(document.get("inhibit_rules") or []) + [r for part in parts for r in part["inhibit_rules"]]
    return document
