"""End to end: a page still arrives when Alertmanager restarts, and arrives once when it can.

The path is test_e2e_alerting's: the staging stack rendered, its service
scraped at a closed port, ServiceDown (P0) fired by a real Prometheus from the
rendered rules and routed by a real Alertmanager to the PagerDuty receiver,
whose endpoint is a local webhook sink.

Alertmanager keeps alerts in memory only. What brings a firing alert back after
a restart is Prometheus, which sends every firing alert again each
``--rules.alert.resend-delay`` (1 m by default, 1 s here). What Alertmanager
keeps on disk is its notification log, written on a graceful shutdown: a page
already sent is not sent again before repeat_interval. A crash loses the log
and the page goes out a second time, with the same PagerDuty dedup_key, so it
lands on the same incident: at least once, never lost.

Beyond addresses, only timings are rewritten, to keep the run short:
ServiceDown's for (1m, which test_e2e_alerting runs as rendered) becomes 3s;
group_wait 10s leaves ample time to kill Alertmanager before it sends;
group_interval 2s makes the flushes after a restart come quickly enough to
wait for.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from figures import count
from servers import (
    LOOPBACK,
    Server,
    WebhookSink,
    closed_port,
    free_port,
    http_json,
    receivers_to_loopback,
    start_alertmanager,
    start_prometheus,
)
from test_e2e_alerting import _prometheus_config, _rendered

pytestmark = pytest.mark.e2e

RESEND_EVERY_SECOND = ("--rules.alert.resend-delay=1s",)


def _alertmanager_config(rendered: Path, sink: WebhookSink) -> str:
    document = yaml.safe_load((rendered / "alertmanager" / "alertmanager.yml").read_text())
    document["route"].update(group_wait="10s", group_interval="2s")
    return yaml.safe_dump(receivers_to_loopback(document, sink.url))


def _prometheus(rendered: Path, alertmanager_url: str) -> tuple[str, dict[str, str]]:
    """Prometheus' config and rules, the service's targets at a closed port, ServiceDown after 3 s."""
    config_text, rules = _prometheus_config(rendered, alertmanager_url, dead=f"{LOOPBACK}:{closed_port()}")
    availability = yaml.safe_load(rules["rules/availability.yaml"])
    (service_down,) = [r for g in availability["groups"] for r in g["rules"] if r.get("alert") == "ServiceDown"]
    service_down["for"] = "3s"
    rules["rules/availability.yaml"] = yaml.safe_dump(availability, sort_keys=False)
    return config_text, rules


def _is_page(body: dict) -> bool:
    return body.get("event_action") == "trigger" and body.get("payload", {}).get("summary") == "genesis is down"


def _pages(sink: WebhookSink) -> list[dict]:
    return [item for item in list(sink.received) if item["path"] == "/pagerduty" and _is_page(item["body"])]


def _metric(server: Server, name: str) -> float:
    """The sum of a metric's samples on the server's own /metrics page (0 when absent)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        page = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


def _holds_service_down(alertmanager: Server) -> bool:
    return any(a["labels"].get("alertname") == "ServiceDown" for a in http_json(f"{alertmanager.url}/api/v2/alerts"))


def _fires_service_down(prometheus: Server) -> bool:
    return bool(prometheus.query('ALERTS{alertname="ServiceDown",alertstate="firing"}'))


def _wait_until(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def _killed_before_group_wait_ended(rendered: Path, sink: WebhookSink) -> None:
    with start_alertmanager(_alertmanager_config(rendered, sink)) as alertmanager:
        config_text, rules = _prometheus(rendered, alertmanager.url)
        with start_prometheus(config_text, rules=rules, extra_args=RESEND_EVERY_SECOND):
            _wait_until(lambda: _holds_service_down(alertmanager), "Alertmanager holds ServiceDown")
            alertmanager.process.kill()
            alertmanager.process.wait(timeout=10)
            assert not _pages(sink), "the page left before the kill: group_wait ended first"
            alertmanager.restart()
            count("faults: Alertmanager", "alertmanager restarts", 1)
            sink.wait_for(_is_page, timeout_s=120)


def _down_when_the_alert_fires(rendered: Path, sink: WebhookSink) -> None:
    port = free_port()  # Alertmanager's, before anything listens there
    config_text, rules = _prometheus(rendered, f"http://{LOOPBACK}:{port}")
    with start_prometheus(config_text, rules=rules, extra_args=RESEND_EVERY_SECOND) as prometheus:
        _wait_until(
            lambda: _fires_service_down(prometheus)
            and _metric(prometheus, "prometheus_notifications_errors_total") > 0,
            "Prometheus fires ServiceDown and fails to send it",
        )
        with start_alertmanager(_alertmanager_config(rendered, sink), port=port):
            count("faults: Alertmanager", "alertmanager restarts", 1)
            sink.wait_for(_is_page, timeout_s=120)


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(
            _killed_before_group_wait_ended,
            id="an Alertmanager killed while the page waits for group_wait sends it once restarted",
        ),
        pytest.param(
            _down_when_the_alert_fires,
            id="an Alertmanager that is down when the alert starts firing sends the page once it is up",
        ),
    ],
)
def test_a_page_not_yet_sent_arrives_once_alertmanager_is_back(project, tmp_path, outage):
    rendered = _rendered(project, tmp_path / "rendered")
    with WebhookSink() as sink:
        outage(rendered, sink)
    (page,) = _pages(sink)
    count("faults: Alertmanager", "alerts delivered after restart", 1)
    assert page["body"]["payload"]["severity"] == "critical"
    assert page["body"]["routing_key"] == "<secret:rollout:secrets.pagerdutyRoutingKey>"


@pytest.mark.parametrize(
    ("crash", "pages"),
    [
        pytest.param(
            False,
            1,
            id="an Alertmanager restarted gracefully after the page keeps its notification log and does not page again",
        ),
        pytest.param(
            True,
            2,
            id="an Alertmanager killed after the page loses its notification log and pages the same incident again",
        ),
    ],
)
def test_a_page_already_sent_across_a_restart(project, tmp_path, crash, pages):
    rendered = _rendered(project, tmp_path / "rendered")
    with WebhookSink() as sink, start_alertmanager(_alertmanager_config(rendered, sink)) as alertmanager:
        config_text, rules = _prometheus(rendered, alertmanager.url)
        with start_prometheus(config_text, rules=rules, extra_args=RESEND_EVERY_SECOND):
            sink.wait_for(_is_page, timeout_s=120)
            if crash:
                alertmanager.process.kill()
                alertmanager.process.wait(timeout=10)
            alertmanager.restart()  # SIGTERM first when it still runs
            count("faults: Alertmanager", "alertmanager restarts", 1)
            # The group's flushes run one after another and each asks the
            # notification log first: at the second question the first flush,
            # page or no page, is over. (The Watchdog's receiver has no
            # integration, so it asks nothing.)
            _wait_until(
                lambda: _holds_service_down(alertmanager)
                and _metric(alertmanager, "alertmanager_nflog_queries_total") >= 2,
                "Alertmanager flushed ServiceDown's group twice after its restart",
            )
    sent = _pages(sink)
    count("faults: Alertmanager", "alerts delivered after restart", len(sent) - 1)
    assert len(sent) == pages
    assert {page["body"]["dedup_key"] for page in sent} == {sent[0]["body"]["dedup_key"]}
