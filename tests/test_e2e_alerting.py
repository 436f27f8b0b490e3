"""End to end: the rendered configs in a real Prometheus and Alertmanager on 127.0.0.1.

The service's scrape targets point at a closed port, so the real Prometheus
sees them down, fires ServiceDown (P0) from the rendered rules, and the real
Alertmanager delivers it through the rendered routing to the PagerDuty
receiver, whose endpoint is a local webhook sink. Only addresses and ports are
rewritten (and the first notification's group_wait shortened); the stack runs
with 1 s scrape and evaluation intervals, set in its config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import edit_stack
from rollout.load.stack import load_file
from rollout.build.render import render
from servers import MetricsTarget, WebhookSink, closed_port, receivers_to_loopback, start_alertmanager, start_prometheus

# Slow (about a minute: ServiceDown's for is 1m), and part of the default suite.
pytestmark = pytest.mark.e2e


def _rendered(project: Path, out: Path, sustain_for: str | None = None) -> Path:
    def fast(c):
        c["rollout:monitoring"].update(scrapeInterval="1s", evaluationInterval="1s")
        if sustain_for:
            c["rollout:canary"].update(sustainFor=sustain_for)

    edit_stack(project, "staging", fast)
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    render(config, "staging", out)
    return out


def _alertmanager_config(rendered: Path, sink: WebhookSink) -> str:
    document = yaml.safe_load((rendered / "alertmanager" / "alertmanager.yml").read_text())
    document["route"]["group_wait"] = "1s"
    return yaml.safe_dump(receivers_to_loopback(document, sink.url))


def _prometheus_config(rendered: Path, alertmanager_url: str, dead: str) -> tuple[str, dict[str, str]]:
    document = yaml.safe_load((rendered / "prometheus" / "prometheus.yml").read_text())
    document["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}]
    service_jobs = [job for job in document["scrape_configs"] if job["job_name"] == "rollout-service"]
    for job in service_jobs:
        for group in job["static_configs"]:
            group["targets"] = [dead]
    document["scrape_configs"] = service_jobs
    rules = {
        f"rules/{path.name}": path.read_text() for path in sorted((rendered / "prometheus" / "rules").glob("*.yaml"))
    }
    return yaml.safe_dump(document), rules


def test_a_down_service_pages_through_the_rendered_routing(project, tmp_path):
    rendered = _rendered(project, tmp_path / "rendered")
    dead = f"127.0.0.1:{closed_port()}"  # nothing listens there
    with WebhookSink() as sink, start_alertmanager(_alertmanager_config(rendered, sink)) as alertmanager:
        config_text, rules = _prometheus_config(rendered, alertmanager.url, dead)
        with start_prometheus(config_text, rules=rules) as prometheus:
            notification = sink.wait_for(
                lambda body: body.get("payload", {}).get("summary") == "genesis is down", timeout_s=120
            )
            assert notification["path"] == "/pagerduty"
            assert notification["body"]["event_action"] == "trigger"
            assert notification["body"]["payload"]["severity"] == "critical"
            assert notification["body"]["routing_key"] == "<secret:rollout:secrets.pagerdutyRoutingKey>"
            up = prometheus.query('up{job="rollout-service"}')
            assert up and all(sample["value"][1] == "0" for sample in up)
    assert alertmanager.process.poll() is not None and prometheus.process.poll() is not None


def _service(requests_per_scrape: int, failures_per_scrape: int):
    """A synthetic track of the service: its request counter grows at every scrape, some 5xx."""

    def page(scrape: int) -> str:
        ok = (requests_per_scrape - failures_per_scrape) * scrape
        failed = failures_per_scrape * scrape
        return (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200"}} {ok}\n'
            f'http_requests_total{{code="500"}} {failed}\n'
        )

    return page


def test_a_failing_canary_reaches_the_rollback_webhook_and_pages(project, tmp_path):
    # sustainFor is the stack's own knob: 10 s keeps the run short without
    # rewriting the rendered rule.
    rendered = _rendered(project, tmp_path / "rendered", sustain_for="10s")
    with (
        WebhookSink() as sink,
        MetricsTarget(_service(100, 0)) as stable,
        MetricsTarget(_service(100, 5)) as canary,
        start_alertmanager(_alertmanager_config(rendered, sink)) as alertmanager,
    ):
        config_text, rules = _prometheus_config(rendered, alertmanager.url, dead="unused")
        document = yaml.safe_load(config_text)
        (job,) = document["scrape_configs"]
        for group in job["static_configs"]:
            group["targets"] = [{"stable": stable, "canary": canary}[group["labels"]["track"]].address]
        with start_prometheus(yaml.safe_dump(document), rules=rules) as prometheus:
            rollback = sink.wait_for(
                lambda body: body.get("receiver") == "rollback-webhook"
                and any(a["labels"]["alertname"] == "CanaryErrorRateHigh" for a in body.get("alerts", [])),
                timeout_s=120,
            )
            # A rollback trigger is P1 (critical): it pages, beside the webhook.
            page = sink.wait_for(
                lambda body: "CanaryErrorRateHigh" in body.get("payload", {}).get("custom_details", {}).get("firing", ""),
                timeout_s=120,
            )
            ratio = prometheus.query('service_track:http_request_errors:ratio_rate5m{track="canary"}')
    assert rollback["path"] == "/webhook/rollback-webhook"
    (alert,) = [a for a in rollback["body"]["alerts"] if a["labels"]["alertname"] == "CanaryErrorRateHigh"]
    assert alert["status"] == "firing"
    assert {k: alert["labels"][k] for k in ("service", "track", "rollback", "priority", "category")} == {
        "service": "genesis",
        "track": "canary",
        "rollback": "true",
        "priority": "P1",
        "category": "errors",
    }
    assert alert["annotations"]["runbook_url"].endswith("/CanaryErrorRateHigh.md")
    assert alert["labels"]["severity"] == "critical"
    assert page["path"] == "/pagerduty"
    assert page["body"]["payload"]["severity"] == "critical"
    assert page["body"]["routing_key"] == "<secret:rollout:secrets.pagerdutyRoutingKey>"
    # The synthetic canary fails 5 % of its requests (over budget, under the short-window
    # trigger's ten times); the recorded SLI says so.
    assert [round(float(sample["value"][1]), 3) for sample in ratio] == [0.05]
    # No canary alert reached the healthy stable track.
    assert not [
        a for item in sink.received for a in item["body"].get("alerts", []) if a["labels"].get("track") == "stable"
    ]
    assert alertmanager.process.poll() is not None and prometheus.process.poll() is not None
