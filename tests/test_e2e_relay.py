"""End to end: a failing canary → real Prometheus → real Alertmanager → `rollout relay` → the forge.

A synthetic canary answers its first scrapes healthy, then fails every
request. The real Prometheus scrapes it with the rendered rules; two real
Alertmanagers run the rendered config: one with the rendered bearer token
(``secrets.relayToken``, revealed as the program does at deploy time), one with
a wrong token. Both post to ``rollout relay`` running as a process, which
dispatches to a local stand-in for the forge's REST API that records each
request. The stack uses an operator already in the cluster: its routing is the
rendered ``AlertmanagerConfig``, converted as the operator converts it (names
prefixed, the namespace matcher added) into the chart's default Alertmanager
config. Only addresses, the token's value and the notification intervals are
changed (and ``send_resolved`` switched on, so the relay does get the resolved
notification it must ignore).
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import ExitStack

import pytest
import yaml

from conftest import edit_stack
from rollout.load.stack import load_file
from rollout.build.render import render
from rollout.build.alertmanager_config import converted, merged
from upstream import chart_defaults
from servers import ForgeStandIn, MetricsTarget, WebhookSink, receivers_to_loopback, start_alertmanager, start_prometheus, start_relay

pytestmark = pytest.mark.e2e

TOKEN = "e2e-relay-token-5d41"
FORGE_TOKEN = "e2e-forge-token-9c2b"
HEALTHY_SCRAPES = 5


class FailingCanary:
    """100 requests a scrape; from scrape HEALTHY_SCRAPES on, every one fails.

    After ``recover()``, no request fails and a million succeed each scrape, so
    the 5-minute error ratio falls under the budget within a few scrapes and the
    alert resolves.
    """

    def __init__(self) -> None:
        self.recovered_at: int | None = None
        self.last = 0

    def recover(self) -> None:
        self.recovered_at = self.last

    def __call__(self, scrape: int) -> str:
        self.last = scrape
        until = scrape if self.recovered_at is None else self.recovered_at
        failing = max(0, until - HEALTHY_SCRAPES)
        ok = 100 * (until - failing) + 1_000_000 * (scrape - until)
        return page(ok, 100 * failing)


def page(ok: int, failed: int) -> str:
    return (
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{code="200"}} {ok}\n'
        f'http_requests_total{{code="500"}} {failed}\n'
    )


def healthy(scrape: int) -> str:
    return f'# TYPE http_requests_total counter\nhttp_requests_total{{code="200"}} {100 * scrape}\n'


def _render(project, out):
    def change(c):
        # An operator already in the cluster: the routing is the stack's AlertmanagerConfig.
        c["rollout:monitoring"].update(install=False, scrapeInterval="1s", evaluationInterval="1s")
        c["rollout:secrets"]["relayToken"] = dict(c["rollout:secrets"]["smtpPassword"])  # real ciphertext, never decrypted here

    edit_stack(project, "staging", change)
    render(load_file(project / "stacks" / "Pulumi.staging.yaml", project), "staging", out)
    return out


def _alertmanager(rendered, sink, relay_url: str, token: str) -> str:
    """The existing Alertmanager's config (kube-prometheus-stack's default) with the rendered
    AlertmanagerConfig added as the operator converts it, its Secret holding ``token``."""
    resource = yaml.safe_load((rendered / "kubernetes" / "rollout-alertmanagerconfig.yaml").read_text())
    secret = yaml.safe_load((rendered / "kubernetes" / "rollout-alertmanager-secret.yaml").read_text())
    # The rendered Secret holds the token's placeholder; the program fills it with the secret.
    assert secret["stringData"]["relayToken"] == "<secret:rollout:secrets.relayToken>"
    values = {**secret["stringData"], "relayToken": token}
    base = chart_defaults("kube-prometheus-stack")["alertmanager"]["config"]
    document = receivers_to_loopback(merged(base, converted(resource, values)), sink.url)
    (ours,) = [r for r in document["route"]["routes"] if r["receiver"].startswith("rollout-staging/rollout/")]
    ours["group_wait"] = "1s"
    (rollback,) = [r for r in document["receivers"] if r["name"] == "rollout-staging/rollout/rollback-webhook"]
    (webhook,) = rollback["webhook_configs"]
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials": token}
    webhook["url"] = f"{relay_url}/webhook"
    webhook["send_resolved"] = True
    for route in ours["routes"]:
        if route["receiver"].endswith("/rollback-webhook"):
            route.update(group_interval="1s", repeat_interval="2s")
    return yaml.safe_dump(document)


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and not line.startswith("#")}


def _wait(predicate, what: str, timeout_s: float = 120):
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def test_a_failing_canary_is_dispatched_once_through_the_relay(project, tmp_path):
    rendered = _render(project, tmp_path / "rendered")
    with ExitStack() as stack:
        sink = stack.enter_context(WebhookSink())
        forge = stack.enter_context(ForgeStandIn())
        relay = stack.enter_context(start_relay("staging", forge.url, project, TOKEN, FORGE_TOKEN))
        good = stack.enter_context(start_alertmanager(_alertmanager(rendered, sink, relay.url, TOKEN)))
        bad = stack.enter_context(start_alertmanager(_alertmanager(rendered, sink, relay.url, "a-wrong-token")))
        stable = stack.enter_context(MetricsTarget(healthy))
        failing = FailingCanary()
        canary = stack.enter_context(MetricsTarget(failing))
        document = yaml.safe_load((rendered / "prometheus" / "prometheus.yml").read_text())
        document["alerting"]["alertmanagers"] = [
            {"static_configs": [{"targets": [good.url.removeprefix("http://"), bad.url.removeprefix("http://")]}]}
        ]
        (job,) = [j for j in document["scrape_configs"] if j["job_name"] == "rollout-service"]
        for group in job["static_configs"]:
            group["targets"] = [{"stable": stable, "canary": canary}[group["labels"]["track"]].address]
        document["scrape_configs"] = [job]
        rules = {f"rules/{p.name}": p.read_text() for p in sorted((rendered / "prometheus" / "rules").glob("*.yaml"))}
        stack.enter_context(start_prometheus(yaml.safe_dump(document), rules=rules))

        (dispatch,) = forge.wait_for(1, timeout_s=120)
        # Alertmanager sends the group again (repeat_interval 2 s) and the wrong token is refused.
        _wait(lambda: _metrics(relay.url).get("rollout_relay_repeats_total", 0) >= 2, "two repeats reached the relay")
        _wait(
            lambda: _metrics(relay.url).get('rollout_relay_rejected_requests_total{reason="unauthorized"}', 0) >= 1,
            "the wrong token was refused",
        )
        # The canary recovers: its alert resolves, and the resolved notification sends nothing.
        failing.recover()
        _wait(lambda: _metrics(relay.url).get('rollout_relay_notifications_total{status="resolved"}', 0) >= 1, "resolved")
        figures = _metrics(relay.url)
        requests = list(forge.requests)
        relay.stop()
        log = relay.log_text()

    assert dispatch["method"] == "POST"
    assert dispatch["path"] == "/repos/example/rollout/dispatches"
    assert dispatch["token"] == FORGE_TOKEN
    assert dispatch["payload"]["event_type"] == "rollback"
    payload = dispatch["payload"]["client_payload"]
    assert (payload["stack"], payload["service"]) == ("staging", "genesis")
    # The short-window trigger fires first; the sustained one (5 min) is inhibited by it.
    assert payload["reason"].startswith("CanaryErrorRateCritical firing since ")
    assert " firing since 20" in payload["reason"]
    # One dispatch, whatever the repeats, the wrong token and the resolution.
    assert len(requests) == 1, json.dumps(requests)
    assert figures['rollout_relay_dispatches_total{service="genesis"}'] == 1
    assert TOKEN not in log and FORGE_TOKEN not in log and "a-wrong-token" not in log
