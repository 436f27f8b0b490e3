"""`rollout verify` against a real Prometheus and Alertmanager on 127.0.0.1 running a rendered stack.

Scrape targets are a local stand-in serving a metric on every path (the
addresses are rewritten to it); everything else is the stack's rendered config.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURE, ROOT, edit_stack
from rollout.load.stack import load_file
from rollout.build.render import render
from rollout.ops.verify import verify
from figures import count
from rollout.ops.http import Retry
from servers import LOOPBACK, FlakyServer, WebhookSink, closed_port, receivers_to_loopback, start_alertmanager, start_prometheus

pytestmark = pytest.mark.slow


def histogram(*bounds: str) -> bytes:
    """A request-duration histogram in the exposition format, with these bucket bounds."""
    lines = [f'http_request_duration_seconds_bucket{{code="200",le="{le}"}} 10' for le in (*bounds, "+Inf")]
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def metrics_target(extra: bytes = b""):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"# a scrape target for the tests\nprobe_success 1\n" + extra
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def rendered(project, tmp_path):
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(scrapeInterval="1s", evaluationInterval="1s"))
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    out = tmp_path / "rendered"
    render(config, "staging", out)
    return project, config, out


def _prometheus_yml(out: Path, target: str, alertmanager: str, down_job: str | None = None) -> str:
    document = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    document["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]
    for job in document["scrape_configs"]:
        address = f"{LOOPBACK}:{closed_port()}" if job["job_name"] == down_job else target
        for group in job["static_configs"]:
            group["targets"] = [address] if job["job_name"] != "rollout-blackbox" else group["targets"]
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = address
    return yaml.safe_dump(document)


def _rules(out: Path, drop: str | None = None) -> dict[str, str]:
    return {f"rules/{p.name}": p.read_text() for p in sorted((out / "prometheus" / "rules").glob("*.yaml")) if p.name != drop}


def _alertmanager_yml(out: Path, sink: WebhookSink) -> str:
    document = yaml.safe_load((out / "alertmanager" / "alertmanager.yml").read_text())
    document["route"]["group_wait"] = "1s"
    for receiver in document["receivers"]:
        for slack in receiver.get("slack_configs", []):
            slack["api_url"] = f"{sink.url}/slack"
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["url"] = f"{sink.url}/pagerduty"
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{sink.url}/webhook"
    return yaml.safe_dump(document)


@contextmanager
def deployed(out: Path, drop_rules: str | None = None, down_job: str | None = None, exposed: bytes = b""):
    with metrics_target(exposed) as target, WebhookSink() as sink, start_alertmanager(_alertmanager_yml(out, sink)) as am:
        # Resend firing alerts every second (default 1 m): with 1 s evaluations
        # the first Watchdog can go out before the Alertmanager is discovered.
        with start_prometheus(
            _prometheus_yml(out, target, am.url, down_job),
            rules=_rules(out, drop_rules),
            extra_args=("--rules.alert.resend-delay=1s",),
        ) as prom:
            yield prom, am


def test_a_healthy_stack_passes_every_check_and_the_cli_exits_0(rendered):
    project, config, out = rendered
    with deployed(out) as (prom, am):
        report = verify(config, "staging", prom.url, am.url, wait_s=30)
        assert report.failed == [], report.failed
        assert any("the Watchdog is firing" in line for line in report.passed)
        assert any("rules loaded as rendered" in line for line in report.passed)
        result = subprocess.run(
            [sys.executable, "-m", "rollout.cli", "--project", str(project), "verify", "--stack", "staging",
             "--prometheus", prom.url, "--alertmanager", am.url],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "stack staging: healthy" in result.stdout


def test_a_missing_rule_fails_naming_it(rendered):
    _, config, out = rendered
    with deployed(out, drop_rules="cost.yaml") as (prom, am):
        report = verify(config, "staging", prom.url, am.url, wait_s=30)
    assert any(line.startswith("prometheus: rules differ") and "PrometheusActiveSeriesOverBudget" in line for line in report.failed), report.failed


@pytest.mark.parametrize("down", ["prometheus", "alertmanager", "grafana"], ids=lambda c: f"{c} down")
def test_each_component_down_in_turn_is_named_and_only_it(rendered, down):
    _, config, out = rendered
    with FlakyServer([], grafana_health) as grafana, deployed(out) as (prom, am):
        urls = {"prometheus": prom.url, "alertmanager": am.url, "grafana": grafana.url}
        if down == "grafana":
            urls["grafana"] = f"http://{LOOPBACK}:{closed_port()}"  # nothing listens there
        else:
            {"prometheus": prom, "alertmanager": am}[down].stop()
        report = verify(config, "staging", urls["prometheus"], urls["alertmanager"], urls["grafana"], wait_s=5,
                        retry=Retry(deadline_s=2, timeout_s=1, base_s=0.1, cap_s=0.5))
    unreachable = [line for line in report.failed if "not reachable" in line]
    assert len(unreachable) == 1 and unreachable[0].startswith(f"{down}: not reachable at {urls[down]}"), report.failed
    assert "tries over" in unreachable[0]
    others = {"prometheus", "alertmanager", "grafana"} - {down}
    assert all(any(line.startswith(f"{name}: ") for line in report.passed) for name in others), report.passed
    count("faults: verify", "components down", 1)
    count("faults: verify", "components down and named", 1)


def grafana_health(method, path, body):
    if path == "/api/health":
        return 200, b'{"database": "ok", "version": "12.1.1"}'
    return 404, b"{}"


@pytest.mark.parametrize(
    "faults, named",
    [
        pytest.param([503] * 100, "grafana: HTTP 503 from", id="a Grafana answering 503 past the deadline is named"),
        pytest.param(["reset"] * 100, "grafana: not reachable at", id="a Grafana closing every connection is named"),
        pytest.param([503, "reset"], None, id="a Grafana that fails twice then answers passes, with its tries"),
    ],
)
def test_grafana_faults_are_retried_then_named(faults, named):
    """The call verify makes to /api/health, with the message verify prints."""
    from rollout.ops.verify import Unreachable, _json

    retry = Retry(deadline_s=2, timeout_s=1, base_s=0.05, cap_s=0.2)
    with FlakyServer(faults, grafana_health) as grafana:
        try:
            health = _json(f"{grafana.url}/api/health", retry)
            problem = None
        except Unreachable as err:
            health, problem = None, f"grafana: {err}"
        requests = grafana.requests
    if named is None:
        assert health["database"] == "ok" and requests == 3
    else:
        assert problem.startswith(named) and "tries over" in problem and requests > 1
    count("faults: HTTP calls", "faults injected", min(len(faults), requests))


def test_a_target_down_fails_naming_its_job(rendered):
    _, config, out = rendered
    with deployed(out, down_job="grafana") as (prom, am):
        report = verify(config, "staging", prom.url, am.url, wait_s=30)
    assert any(line.startswith("prometheus: scrape job grafana: target(s) down") for line in report.failed), report.failed
    assert len(report.failed) == 1, report.failed


def test_grafana_health_is_checked_when_given(rendered):
    _, config, out = rendered

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b'{"database": "ok", "version": "12.1.1"}' if self.path == "/api/health" else b"{}"
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    grafana = ThreadingHTTPServer((LOOPBACK, 0), Health)
    threading.Thread(target=grafana.serve_forever, daemon=True).start()
    try:
        with deployed(out) as (prom, am):
            ok = verify(config, "staging", prom.url, am.url, f"http://{LOOPBACK}:{grafana.server_address[1]}", wait_s=30)
            down = verify(config, "staging", prom.url, am.url, f"http://{LOOPBACK}:{closed_port()}", wait_s=30)
    finally:
        grafana.shutdown()
        grafana.server_close()
    assert "grafana: /api/health reports the database ok" in ok.passed
    assert any(line.startswith("grafana: not reachable") for line in down.failed)


@pytest.mark.parametrize(
    "edit, same",
    [
        pytest.param(lambda rules: None, True, id="the rendered inhibit rules pass as Alertmanager prints them back"),
        pytest.param(lambda rules: rules[0].update(equal=["alertname"]), False,
                     id="a rule that needs fewer equal labels fails naming the inhibit rules"),
    ],
)
def test_a_real_alertmanager_is_checked_for_the_rendered_inhibit_rules(rendered, edit, same):
    _, config, out = rendered

    def prometheus(method, path, body):
        return (200, b"OK") if path in ("/-/healthy", "/-/ready") else (404, b"{}")

    with WebhookSink() as sink:
        document = yaml.safe_load(_alertmanager_yml(out, sink))
        edit(document["inhibit_rules"])
        with start_alertmanager(yaml.safe_dump(document)) as am, FlakyServer([], prometheus) as prom:
            report = verify(config, "staging", prom.url, am.url, wait_s=0,
                            retry=Retry(deadline_s=2, timeout_s=1, base_s=0.05, cap_s=0.2))
    lines = [line for line in report.passed + report.failed if line.startswith("alertmanager: the loaded config")]
    expected = ("routes and inhibits like the rendered one" if same
                else "is not the rendered one (inhibit rules differ)")
    assert lines == [f"alertmanager: the loaded config {expected}"], report.failed


def test_a_component_that_fails_after_its_health_check_is_named_not_an_internal_error():
    """Alertmanager ready, then its status API answers 503 past the deadline; Prometheus malformed."""
    from rollout.load.stack import load_stack

    def alertmanager(method, path, body):
        return (200, b"OK") if path in ("/-/healthy", "/-/ready") else (503, b"{}")

    def prometheus(method, path, body):
        return (200, b"OK") if path in ("/-/healthy", "/-/ready") else (200, b'{"data": {"activeTargets": "x"}}')

    retry = Retry(deadline_s=1, timeout_s=0.5, base_s=0.05, cap_s=0.2)
    with FlakyServer([], alertmanager) as am, FlakyServer([], prometheus) as prom:
        report = verify(load_stack("staging", FIXTURE), "staging", prom.url, am.url, wait_s=0, retry=retry)
    assert any(line.startswith(f"alertmanager: HTTP 503 from {am.url}/api/v2/status after ") for line in report.failed), report.failed
    assert any(line.startswith("prometheus: answered in an unexpected shape") for line in report.failed), report.failed
    count("faults: verify", "components failing after their health check, named", 2)


#: The default buckets of the Prometheus client libraries (Go's DefBuckets, Python's
#: Histogram.DEFAULT_BUCKETS): no 0.2, the latency SLO's bucket.
CLIENT_DEFAULT_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10")


@pytest.mark.parametrize(
    "bounds, missing",
    [
        pytest.param(CLIENT_DEFAULT_BUCKETS, True, id="the client libraries' default buckets lack 0.2: FAILED, naming metric, service, bucket"),
        pytest.param(("0.05", "0.1", "0.2", "0.5", "1"), False, id="buckets with 0.2 pass"),
        pytest.param(("0.05", "0.1", "0.20", "0.5", "1.0"), False, id="0.20 written by another client is the same bucket"),
    ],
)
def test_a_service_without_the_slo_bucket_fails_verify(rendered, bounds, missing):
    project, config, out = rendered
    with deployed(out, exposed=histogram(*bounds)) as (prom, am):
        result = subprocess.run(
            [sys.executable, "-m", "rollout.cli", "--project", str(project), "verify", "--stack", "staging",
             "--prometheus", prom.url, "--alertmanager", am.url, "--wait", "30"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    line = (
        'FAILED  prometheus: service genesis: http_request_duration_seconds_bucket has no bucket le="0.2" '
        "(slo.latencyP95Seconds): the latency SLO's rules and panels stay empty; buckets seen: "
    )
    if missing:
        assert result.returncode == 1, result.stdout + result.stderr
        assert failed == [line + ", ".join(f"{float(b):g}" for b in bounds)], result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert 'ok      prometheus: service genesis: http_request_duration_seconds_bucket has the bucket le="0.2"' in result.stdout


# --- a Prometheus and an Alertmanager shared with other stacks (monitoring.install: false) -------


SHARED = ("staging", "production")


@contextmanager
def shared_operator(project: Path, tmp_path: Path, leave_out: str | None = None):
    """One Prometheus and one Alertmanager holding staging's and production's rules, targets and
    AlertmanagerConfigs (``leave_out``: that stack's AlertmanagerConfig is not loaded), beside the
    operator's own down target and a rule group of its own."""
    from rollout.build.alertmanager_config import alertmanager_config_resource, converted, merged, secret_values
    from upstream import chart_defaults

    configs, rules, jobs = {}, {}, []
    for stack in SHARED:
        edit_stack(project, stack, lambda c: c["rollout:monitoring"].update(install=False, scrapeInterval="1s", evaluationInterval="1s"))
        configs[stack] = load_file(project / "stacks" / f"Pulumi.{stack}.yaml", project)
        out = tmp_path / stack
        render(configs[stack], stack, out)
        rules.update({f"rules/{stack}-{name}": text for name, text in _rules(out).items()})
        for job in yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]:
            if job["job_name"] in ("rollout-service", "rollout-blackbox"):
                # One scrape pool per stack, each naming its targets' job as the operator does.
                job["relabel_configs"] = job.get("relabel_configs", []) + [{"target_label": "job", "replacement": job["job_name"]}]
                job["job_name"] = f"{stack}-{job['job_name']}"
                jobs.append(job)
    rules["rules/operator.yaml"] = yaml.safe_dump({"groups": [{"name": "kubernetes-system", "rules": [{"alert": "KubeletDown", "expr": "vector(1)"}]}]})
    base = chart_defaults("kube-prometheus-stack")["alertmanager"]["config"]
    parts = [
        converted(alertmanager_config_resource(configs[s]), secret_values(configs[s]))
        for s in SHARED if s != leave_out
    ]
    with metrics_target() as target, WebhookSink() as sink:
        document = receivers_to_loopback(merged(base, *parts), sink.url)
        document["route"]["group_wait"] = "1s"
        with start_alertmanager(yaml.safe_dump(document)) as am:
            for job in jobs:
                for group in job["static_configs"]:
                    group["targets"] = group["targets"] if job["job_name"].endswith("blackbox") else [target]
                for relabel in job.get("relabel_configs", []):
                    if relabel.get("target_label") == "__address__":
                        relabel["replacement"] = target
            jobs.append({"job_name": "kubelet", "static_configs": [{"targets": [f"{LOOPBACK}:{closed_port()}"], "labels": {"namespace": "kube-system"}}]})
            prometheus_yml = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": sorted(rules),
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}]},
                "scrape_configs": jobs,
            }
            with start_prometheus(yaml.safe_dump(prometheus_yml), rules=rules, extra_args=("--rules.alert.resend-delay=1s",)) as prom:
                yield configs, prom, am


def test_on_a_shared_prometheus_each_stack_checks_only_what_it_contributes(project, tmp_path):
    with shared_operator(project, tmp_path) as (configs, prom, am):
        for stack in SHARED:
            report = verify(configs[stack], stack, prom.url, am.url, wait_s=30)
            assert report.failed == [], (stack, report.failed)
            passed = "\n".join(report.passed)
            assert "scrape job rollout-service: 2 target(s) up" in passed, passed
            assert "kubelet" not in passed and "grafana" not in passed
            assert "the loaded config routes and inhibits like the rendered one" in passed and "the Watchdog is firing" in passed


def test_on_a_shared_alertmanager_a_stack_whose_alertmanager_config_is_not_loaded_fails(project, tmp_path):
    with shared_operator(project, tmp_path, leave_out="staging") as (configs, prom, am):
        failed = verify(configs["staging"], "staging", prom.url, am.url, wait_s=30).failed
        assert any(line.startswith("alertmanager: the loaded config is not the rendered one (routes, receivers, inhibit rules differ)") for line in failed), failed
        # Only the routing is missing: the Watchdog still reaches the Alertmanager, and routes nowhere of the stack's.
        assert len(failed) == 1, failed
        assert verify(configs["production"], "production", prom.url, am.url, wait_s=30).failed == []


def test_verify_checks_the_relay_when_given(rendered):
    _, config, _ = rendered
    with FlakyServer([], lambda method, path, body: (200, b"ok")) as relay:
        report = verify(config, "staging", f"http://{LOOPBACK}:{closed_port()}", f"http://{LOOPBACK}:{closed_port()}",
                        wait_s=1, retry=Retry(max_tries=1, deadline_s=2), relay=relay.url)
    assert "relay: /healthz answers 200" in report.passed
    dead = verify(config, "staging", f"http://{LOOPBACK}:{closed_port()}", f"http://{LOOPBACK}:{closed_port()}",
                  wait_s=1, retry=Retry(max_tries=1, deadline_s=2), relay=f"http://{LOOPBACK}:{closed_port()}")
    assert any(line.startswith("relay: not reachable at") for line in dead.failed)
