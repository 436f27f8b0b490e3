"""``rollout verify``: the smoke test after a ``pulumi up``.

Against the running Prometheus and Alertmanager (and Grafana, when given), it
checks that each component is healthy and ready, every scrape job of the
rendered config has targets and all of them are up, the stack's rules are
loaded (same names, same count as rendered), the Alertmanager config loaded is
the rendered one (routing, receivers and inhibition; credentials aside), and
the Watchdog is firing, and each service's request-duration histogram has the
bucket the latency SLO reads (docs/metrics.md). Each problem is one line naming
the component.

With an operator already in the cluster (``monitoring.install: false``) the
Prometheus and Alertmanager are shared: verify then checks only what this stack
contributes and ignores everything else: its own targets (the service and probe
jobs, in its namespace) up, its own rules loaded (those labelled with its
namespace), its AlertmanagerConfig loaded as the operator converts it (routes,
receivers and inhibit rules named after its namespace), its Watchdog firing, and,
given ``--relay``, the rollback relay answering.

Every call retries transient failures (no connection, a timeout, a 5xx) within
its deadline (:mod:`rollout.ops.http`); a component still not answering after
that is reported as not reachable, with the number of tries, and the checks
that need it are not run.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import yaml

from rollout.build.alertmanager import alertmanager_config
from rollout.model import conventions, scope
from rollout.model.config import StackConfig
from rollout.model.conventions import SERVICE_LABEL
from rollout.ops.evidence import sample_value
from rollout.ops.http import Answer, Retry, fetch, json_body, public_url
from rollout.build.prometheus import prometheus_config

@dataclass
class Report:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, ok: bool, component: str, what: str, problem: str) -> None:
        (self.passed if ok else self.failed).append(f"{component}: {what if ok else problem}")


class Unreachable(Exception):
    """A call that got no usable answer, after its retries; the message says why."""


def _get(url: str, retry: Retry) -> Answer:
    answer = fetch(url, retry=retry)
    if not answer.answered:
        raise Unreachable(f"not reachable at {public_url(url)} after {answer.tries_text()}: {answer.error}")
    return answer


def _json(url: str, retry: Retry) -> Any:
    answer = _get(url, retry)
    if answer.status != 200:
        raise Unreachable(f"HTTP {answer.status} from {public_url(url)} after {answer.tries_text()}")
    document, why = json_body(answer)
    if why:
        raise Unreachable(f"{public_url(url)}: {why}")
    return document


def _health(report: Report, component: str, base: str, paths: tuple[str, ...], retry: Retry) -> bool:
    for path in paths:
        try:
            answer = _get(base.rstrip("/") + path, retry)
        except Unreachable as err:
            report.check(False, component, "", str(err))
            return False
        tries = f" (after {answer.tries_text()})" if answer.tries > 1 else ""
        report.check(
            answer.status == 200, component, f"{path} answers 200{tries}",
            f"{path} answered HTTP {answer.status} after {answer.tries_text()}",
        )
        if answer.status != 200:
            return False
    return True


def _short(value: object, limit: int = 200) -> str:
    """What a server sent, cut to a length a message can hold."""
    try:
        text = str(value)
    except RecursionError:
        text = "(nested too deeply to show)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _route_tree(route: dict) -> list:
    return [
        (r.get("receiver"), tuple(sorted(str(m).replace(" ", "") for m in r.get("matchers") or [])), bool(r.get("continue")), _route_tree(r))
        for r in route.get("routes") or []
    ]


def _inhibitions(config: dict) -> list[str]:
    """Each inhibit rule as one comparable text, in no particular order: its source and
    target matchers as Alertmanager prints them back (spaces and quotes dropped) and
    the labels that must be equal."""
    return sorted(
        json.dumps(
            [sorted(str(m).replace(" ", "").replace('"', "") for m in rule.get(k) or []) for k in ("source_matchers", "target_matchers")]
            + [sorted(str(label) for label in rule.get("equal") or [])]
        )
        for rule in config.get("inhibit_rules") or []
    )


def _normal_matchers(tree: list) -> list:
    """Matchers as Alertmanager prints them back (quotes dropped where not needed)."""
    return [(receiver, tuple(sorted(m.replace('"', "") for m in matchers)), cont, _normal_matchers(children)) for receiver, matchers, cont, children in tree]


def verify(
    config: StackConfig,
    stack: str,
    prometheus: str,
    alertmanager: str,
    grafana: str | None = None,
    wait_s: float = 60,
    retry: Retry | None = None,
    relay: str | None = None,
) -> Report:
    """Run every check; ``wait_s`` bounds the waits for first scrapes and the Watchdog.

    ``retry`` sets each HTTP call's tries and deadline (default :class:`Retry`);
    ``relay`` is the rollback relay's base URL, whose ``/healthz`` must answer.
    """
    retry = retry or Retry()
    report = Report()
    if relay:
        _health(report, "relay", relay, ("/healthz",), retry)
    prom_ok = _health(report, "prometheus", prometheus, ("/-/healthy", "/-/ready"), retry)
    am_ok = _health(report, "alertmanager", alertmanager, ("/-/healthy", "/-/ready"), retry)
    if grafana:
        try:
            health = _json(grafana.rstrip("/") + "/api/health", retry)
            report.check(
                isinstance(health, dict) and health.get("database") == "ok",
                "grafana", "/api/health reports the database ok", f"/api/health says {_short(health)}",
            )
        except Unreachable as err:
            report.check(False, "grafana", "", str(err))

    deadline = time.monotonic() + wait_s
    for component, ok, checks in (
        ("prometheus", prom_ok, lambda: _prometheus_checks(report, config, stack, prometheus.rstrip("/"), deadline, retry)),
        ("alertmanager", am_ok, lambda: _alertmanager_checks(report, config, alertmanager.rstrip("/"), deadline, retry)),
    ):
        if not ok:
            continue
        try:
            checks()
        except Unreachable as err:
            report.check(False, component, "", str(err))
        except (KeyError, TypeError, AttributeError, IndexError, ValueError, yaml.YAMLError) as err:
            report.check(False, component, "", f"answered in an unexpected shape ({type(err).__name__}: {_short(err)})")
        except RecursionError:
            report.check(False, component, "", "answered in an unexpected shape (nested too deeply)")
    return report


def _prometheus_checks(report: Report, config: StackConfig, stack: str, base: str, deadline: float, retry: Retry) -> None:
    """Every scrape job has targets, all up; the loaded rules are the rendered ones.

    On a shared Prometheus: only the stack's own jobs and targets (in its scope) and
    the rules labelled with its scope."""
    shared = is_shared(config)
    own = scope.labels(config)
    expected_jobs = [job["job_name"] for job in prometheus_config(config, stack)["scrape_configs"]]
    if shared:
        expected_jobs = [job for job in expected_jobs if job in SHARED_JOBS]
    # Right after a deploy, discovery and the first scrapes take a few
    # seconds: wait (up to the deadline) until every job has scraped.
    while True:
        targets = _json(f"{base}/api/v1/targets?state=active", retry)["data"]["activeTargets"]
        if shared:
            targets = [t for t in targets if _in_scope(t.get("labels") or {}, own)]
        by_job: dict[str, list[dict]] = {}
        for target in targets:
            by_job.setdefault(target["labels"].get("job", target.get("scrapePool")), []).append(target)
        settled = all(job in by_job for job in expected_jobs) and all(t.get("health") != "unknown" for t in targets)
        if settled or time.monotonic() >= deadline:
            break
        time.sleep(1)
    for job in expected_jobs:
        down = [t for t in by_job.get(job, []) if t.get("health") != "up"]
        if job not in by_job:
            report.check(False, "prometheus", "", f"scrape job {job} has no targets")
        else:
            report.check(
                not down,
                "prometheus",
                f"scrape job {job}: {len(by_job[job])} target(s) up",
                f"scrape job {job}: target(s) down: "
                + ", ".join(f"{t['labels'].get('instance')} ({t.get('lastError') or t.get('health')})" for t in down),
            )
    _bucket_checks(report, config, base, retry)
    from alerts.catalogue import rule_groups

    rendered = Counter((g["name"], r.get("alert") or r.get("record")) for g in rule_groups(config) for r in g["rules"])
    loaded_groups = _json(f"{base}/api/v1/rules", retry)["data"]["groups"]
    loaded = Counter(
        (g["name"], r["name"]) for g in loaded_groups for r in g["rules"]
        if not shared or _in_scope(r.get("labels") or {}, own)
    )
    missing, extra = sorted((rendered - loaded).elements()), sorted((loaded - rendered).elements())
    report.check(
        not missing and not extra,
        "prometheus",
        f"{sum(rendered.values())} rules loaded as rendered",
        "rules differ from the rendered ones: "
        + "; ".join(
            ([f"missing {', '.join(n for _, n in missing)}"] if missing else [])
            + ([f"not rendered {', '.join(n for _, n in extra)}"] if extra else [])
        )
        or "rule count differs",
    )


#: The scrape jobs a stack brings to a shared Prometheus (the others are the operator's).
SHARED_JOBS = (conventions.JOB_SERVICE, conventions.JOB_PROBE)


def is_shared(config: StackConfig) -> bool:
    """Whether the stack uses an operator already in the cluster, whose Prometheus and
    Alertmanager other stacks may share."""
    return config.target == "kubernetes" and not config.monitoring.install


def _in_scope(labels: dict, own: dict[str, str]) -> bool:
    return all(labels.get(name) == value for name, value in own.items())


def _bucket_checks(report: Report, config: StackConfig, base: str, retry: Retry) -> None:
    """Each service Prometheus sees has the histogram bucket the latency SLO reads.

    The latency SLO counts requests in the ``le`` bucket equal to
    ``slo.latencyP95Seconds``; histogram buckets are fixed by the service's
    client library, whose defaults (0.1, 0.25, ...) have no 0.2. Without that
    bucket the SLO's rules and panels are empty, silently: this says so. A
    service with no duration series yet is not judged (docs/metrics.md).
    """
    metric = config.metrics.request_duration_bucket
    wanted = config.slo.latency_p95_seconds
    for service in config.services:
        selector = scope.select(config, metric, f'{SERVICE_LABEL}="{service.name}"')
        url = f"{base}/api/v1/label/le/values?" + urlencode({"match[]": selector})
        values = _json(url, retry)["data"]
        bounds = sorted({sample_value(v) for v in values if _is_number(v)})
        if not bounds:
            continue
        shown = ", ".join(f"{b:g}" for b in bounds if b != float("inf"))
        report.check(
            any(math.isclose(b, wanted, rel_tol=1e-9) for b in bounds),
            "prometheus",
            f"service {service.name}: {metric} has the bucket le=\"{wanted:g}\" the latency SLO reads",
            f"service {service.name}: {metric} has no bucket le=\"{wanted:g}\" (slo.latencyP95Seconds): "
            f"the latency SLO's rules and panels stay empty; buckets seen: {shown or 'only +Inf'}",
        )


def _is_number(text: object) -> bool:
    """A bucket bound as Prometheus and client libraries write it ("0.25", "+Inf")."""
    try:
        sample_value(text)
    except ValueError:
        return False
    return True


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: Alertmanager prints its config back without
    any, and aliases can make a few bytes stand for a tree too large to compare."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("the loaded config uses YAML aliases")
        return super().compose_node(parent, index)


def _own_part(config: StackConfig, loaded: dict) -> tuple[dict, dict]:
    """(what the shared Alertmanager loaded of this stack, what the operator makes of its
    AlertmanagerConfig), each as ``{route: {routes: [...]}, receivers, inhibit_rules}``."""
    from rollout.build.alertmanager_config import alertmanager_config_resource, converted

    resource = alertmanager_config_resource(config)
    metadata = resource["metadata"]
    prefix = f"{metadata['namespace']}/{metadata['name']}/"
    own = converted(resource, _Anything(), config.monitoring.existing.matcher_strategy)
    ours = [r for r in (loaded.get("route") or {}).get("routes") or [] if str(r.get("receiver", "")).startswith(prefix)]
    receivers = [r for r in loaded.get("receivers") or [] if str(r.get("name", "")).startswith(prefix)]
    marker = [m for m in scope.matchers(config)]
    inhibit = [
        rule for rule in loaded.get("inhibit_rules") or []
        if marker and all(m.replace('"', "") in [str(x).replace('"', "").replace(" ", "") for x in rule.get("source_matchers") or []] for m in marker)
    ] if config.monitoring.existing.matcher_strategy == "OnNamespace" else own["inhibit_rules"]
    return (
        {"route": {"routes": ours}, "receivers": receivers, "inhibit_rules": inhibit},
        {"route": {"routes": [own["route"]]}, "receivers": own["receivers"], "inhibit_rules": own["inhibit_rules"]},
    )


class _Anything(dict):
    """Secret values for a conversion that only its shape is compared of."""

    def __missing__(self, key: str) -> str:
        return ""


def _alertmanager_checks(report: Report, config: StackConfig, base: str, deadline: float, retry: Retry) -> None:
    """The loaded config routes and inhibits like the rendered one; the Watchdog is firing."""
    status = _json(f"{base}/api/v2/status", retry)
    loaded = yaml.load(status["config"]["original"], Loader=_NoAliases)  # noqa: S506 - a SafeLoader
    if not isinstance(loaded, dict):
        raise TypeError("the loaded config is not a mapping")
    if is_shared(config):
        loaded, rendered = _own_part(config, loaded)
    else:
        rendered = alertmanager_config(config)
    same_routes = _normal_matchers(_route_tree(loaded.get("route") or {})) == _normal_matchers(_route_tree(rendered["route"]))
    same_receivers = sorted(r["name"] for r in loaded.get("receivers") or []) == sorted(r["name"] for r in rendered["receivers"])
    same_inhibit = _inhibitions(loaded) == _inhibitions(rendered)
    report.check(
        same_routes and same_receivers and same_inhibit,
        "alertmanager",
        "the loaded config routes and inhibits like the rendered one",
        "the loaded config is not the rendered one ("
        + ", ".join(n for n, ok in (("routes", same_routes), ("receivers", same_receivers), ("inhibit rules", same_inhibit)) if not ok)
        + " differ)",
    )
    firing = False
    while True:
        query = urlencode([("filter", 'alertname="Watchdog"'), *(("filter", m) for m in scope.matchers(config)), ("active", "true")])
        alerts = _json(f"{base}/api/v2/alerts?{query}", retry)
        firing = any(a.get("status", {}).get("state") == "active" for a in alerts)
        if firing or time.monotonic() >= deadline:
            break
        time.sleep(1)
    report.check(firing, "alertmanager", "the Watchdog is firing", "the Watchdog is not firing: the alerting path is broken")
