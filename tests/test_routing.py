"""Alertmanager routing, checked by the real amtool on every stack's rendered config."""

from __future__ import annotations

import json
import time
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts.catalogue import all_alerts
from conftest import FIXTURE, STACKS
from rollout.build.alertmanager import alertmanager_config
from rollout.model.config import SecretRef
from rollout.load.stack import load_stack
from rollout.build.render import render
from servers import WebhookSink, http_json, receivers_to_loopback, start_alertmanager


@pytest.fixture(scope="module", params=STACKS)
def rendered(request, tmp_path_factory):
    stack = request.param
    out = tmp_path_factory.mktemp(f"am-{stack}")
    config = load_stack(stack, FIXTURE)
    render(config, stack, out)
    return stack, config, out / "alertmanager" / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def routes_to(config_file: Path, labels: dict[str, str], receivers: list[str]) -> subprocess.CompletedProcess:
    return amtool(
        "config", "routes", "test",
        f"--config.file={config_file}",
        f"--verify.receivers={','.join(receivers)}",
        *[f"{k}={v}" for k, v in labels.items()],
    )


def test_amtool_accepts_the_config(rendered):
    _, _, config_file = rendered
    result = amtool("check-config", str(config_file))
    assert result.returncode == 0, result.stdout + result.stderr


def _expected_receivers(config, priority: str, category: str, rollback: bool) -> list[str]:
    receivers = []
    if rollback and config.alerting.rollback_webhook:
        receivers.append("rollback-webhook")
    if priority in ("P0", "P1"):
        receivers.append("pagerduty" if config.alerting.pagerduty else "slack-warnings")
    elif priority in ("P2", "P3"):
        receivers.append("slack-deployments" if category == "deployment" else "slack-warnings")
    else:
        receivers.append("email")
    return receivers


CASES = [
    pytest.param("P0", "availability", False, id="P0 pages"),
    pytest.param("P1", "errors", False, id="P1 pages"),
    pytest.param("P2", "security", False, id="P2 goes to the warnings channel"),
    pytest.param("P3", "deployment", False, id="P3 of the deployment category goes to the deployments channel"),
    pytest.param("P3", "cost", False, id="P3 of another category goes to the warnings channel"),
    pytest.param("P4", "deployment", False, id="P4 is mailed"),
    pytest.param("P2", "errors", True, id="a rollback trigger also reaches the rollback webhook"),
]


@pytest.mark.parametrize("priority, category, rollback", CASES)
def test_each_priority_reaches_its_receivers(rendered, priority, category, rollback):
    _, config, config_file = rendered
    labels = {"alertname": "AnyAlert", "service": "genesis", "priority": priority, "category": category}
    if rollback:
        labels["rollback"] = "true"
    expected = _expected_receivers(config, priority, category, rollback)
    result = routes_to(config_file, labels, expected)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_pages_through_pagerduty():
    assert load_stack("production", FIXTURE).alerting.pagerduty
    assert _expected_receivers(load_stack("production", FIXTURE), "P0", "availability", False) == ["pagerduty"]


def test_every_alert_of_the_catalogue_is_routed_as_its_labels_say(rendered):
    stack, config, config_file = rendered
    for alert in all_alerts(config):
        labels = {"alertname": alert.name, **alert.rule(config.alerting.runbook_base_url)["labels"], "service": "genesis"}
        if alert.name == "Watchdog":
            expected = ["watchdog"]
        else:
            expected = _expected_receivers(config, labels["priority"], labels["category"], alert.rollback)
        result = routes_to(config_file, labels, expected)
        assert result.returncode == 0, (stack, alert.name, result.stdout + result.stderr)


def test_critical_inhibits_warning_of_the_same_alert_and_service_and_an_slo_page_its_ticket(rendered):
    _, _, config_file = rendered
    inhibit = yaml.safe_load(config_file.read_text())["inhibit_rules"]
    assert {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["alertname", "service"]} in inhibit
    assert any(rule["equal"] == ["slo", "service"] for rule in inhibit)


def test_the_rendered_file_holds_no_secret_only_placeholders(rendered):
    _, _, config_file = rendered
    text = config_file.read_text()
    document = yaml.safe_load(text)
    receivers = {r["name"]: r for r in document["receivers"]}
    for name in ("slack-warnings", "slack-deployments"):
        assert receivers[name]["slack_configs"][0]["api_url"].startswith("https://secret.invalid/")
    if "pagerduty" in receivers:
        assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key"] == "<secret:rollout:secrets.pagerdutyRoutingKey>"
    assert "example-" not in text and "hooks.slack.example" not in text


def _post_alerts(alertmanager_url: str, alerts: list[dict]) -> None:
    http_json(f"{alertmanager_url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST")


def _states(alertmanager_url: str) -> dict[tuple[str, str, str], str]:
    """(alertname, service, severity) -> active | suppressed, as Alertmanager's API reports them."""
    answer = http_json(f"{alertmanager_url}/api/v2/alerts")
    return {
        (a["labels"]["alertname"], a["labels"]["service"], a["labels"]["severity"]): a["status"]["state"]
        for a in answer
    }


@pytest.mark.e2e
def test_a_real_alertmanager_inhibits_as_the_rendered_rules_say(rendered):
    stack, config, config_file = rendered
    document = yaml.safe_load(config_file.read_text())
    alerts = [
        # The same alert and service at two severities: critical wins.
        {"alertname": "CanaryErrorRateHigh", "service": "genesis", "severity": "critical", "priority": "P2", "category": "errors"},
        {"alertname": "CanaryErrorRateHigh", "service": "genesis", "severity": "warning", "priority": "P3", "category": "errors"},
        # Another service's warning is not silenced by genesis's critical.
        {"alertname": "CanaryErrorRateHigh", "service": "exodus", "severity": "warning", "priority": "P3", "category": "errors"},
        # An SLO's page inhibits the same SLO's ticket (different alert names).
        {"alertname": "ErrorRateSLOBurnRateCritical", "service": "genesis", "severity": "critical", "priority": "P1", "category": "errors", "slo": "errorrate"},
        {"alertname": "ErrorRateSLOBurnRateHigh", "service": "genesis", "severity": "warning", "priority": "P3", "category": "errors", "slo": "errorrate"},
        # A warning of another alert stays active beside a critical.
        {"alertname": "ScrapeTargetDown", "service": "genesis", "severity": "warning", "priority": "P3", "category": "availability"},
    ]
    with WebhookSink() as sink, start_alertmanager(yaml.safe_dump(receivers_to_loopback(document, sink.url))) as am:
        expected = {
            ("CanaryErrorRateHigh", "genesis", "critical"): "active",
            ("CanaryErrorRateHigh", "genesis", "warning"): "suppressed",
            ("CanaryErrorRateHigh", "exodus", "warning"): "active",
            ("ErrorRateSLOBurnRateCritical", "genesis", "critical"): "active",
            ("ErrorRateSLOBurnRateHigh", "genesis", "warning"): "suppressed",
            ("ScrapeTargetDown", "genesis", "warning"): "active",
        }
        _post_alerts(am.url, [{"labels": labels} for labels in alerts])
        # Alertmanager marks an alert suppressed once its pipeline has seen the inhibiting one,
        # not when the POST returns: a busy machine shows the warning still active for a moment.
        deadline = time.monotonic() + 30
        states = _states(am.url)
        while states != expected and time.monotonic() < deadline:
            time.sleep(0.2)
            states = _states(am.url)
    assert states == expected, stack


@pytest.mark.parametrize("stack", STACKS)
def test_the_deployed_config_with_decrypted_values_is_valid_too(stack, tmp_path):
    """Under Pulumi the same builder writes the decrypted values (and the whole
    text is a secret); amtool must accept that variant as well."""
    config = load_stack(stack, FIXTURE)

    def decrypted(secret: SecretRef, is_url: bool) -> str:
        name = secret.path.rsplit(".", 1)[-1]
        return f"https://hooks.example.invalid/{name}" if is_url else f"decrypted-{name}"

    document = alertmanager_config(config, reveal=decrypted)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(document))
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    assert "<secret:" not in text and "secret.invalid" not in text
    receivers = {r["name"]: r for r in document["receivers"]}
    assert receivers["slack-deployments"]["slack_configs"][0]["api_url"].endswith("/slackDeploymentsWebhookUrl")
    if config.alerting.pagerduty:
        assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key"] == "decrypted-pagerdutyRoutingKey"


def _with_heartbeat(project, interval="1m"):
    from conftest import edit_stack
    from rollout.load.stack import load_file

    def change(c):
        c["rollout:secrets"]["heartbeatUrl"] = dict(c["rollout:secrets"]["smtpPassword"])  # real ciphertext, never decrypted here
        c["rollout:alerting"]["heartbeatInterval"] = interval

    edit_stack(project, "production", change)
    return load_file(project / "stacks" / "Pulumi.production.yaml", project)


def test_the_watchdog_goes_to_the_heartbeat_url_on_a_short_repeat_interval(project):
    document = alertmanager_config(_with_heartbeat(project, "2m"))
    (route,) = [r for r in document["route"]["routes"] if r["receiver"] == "watchdog"]
    assert (route["group_interval"], route["repeat_interval"], route["group_wait"]) == ("2m", "2m", "0s")
    (receiver,) = [r for r in document["receivers"] if r["name"] == "watchdog"]
    assert receiver["webhook_configs"] == [
        {"url": "https://secret.invalid/rollout/secrets/heartbeatUrl", "send_resolved": False}
    ]


def test_without_a_heartbeat_url_the_watchdog_has_no_integration():
    document = alertmanager_config(load_stack("staging", FIXTURE))
    (receiver,) = [r for r in document["receivers"] if r["name"] == "watchdog"]
    assert receiver == {"name": "watchdog"}


def test_a_real_alertmanager_sends_the_watchdog_as_heartbeats(project):
    # The rendered config with a 2 s heartbeat interval; the heartbeat service is a local sink.
    document = receivers_to_loopback(alertmanager_config(_with_heartbeat(project, "2s")), "http://127.0.0.1:1")
    with WebhookSink() as sink:
        (receiver,) = [r for r in document["receivers"] if r["name"] == "watchdog"]
        receiver["webhook_configs"][0]["url"] = f"{sink.url}/heartbeat"
        with start_alertmanager(yaml.safe_dump(document)) as alertmanager:
            watchdog = [{"labels": {"alertname": "Watchdog", "severity": "none", "priority": "P4", "category": "availability"}}]
            import time

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len([r for r in sink.received if r["path"] == "/heartbeat"]) < 3:
                # Prometheus resends a firing alert; so does this test.
                http_json(f"{alertmanager.url}/api/v2/alerts", data=json.dumps(watchdog).encode())
                time.sleep(1)
            beats = [r for r in sink.received if r["path"] == "/heartbeat"]
    assert len(beats) >= 3
    assert all(b["body"]["receiver"] == "watchdog" and b["body"]["status"] == "firing" for b in beats)
    # Nothing else was notified: the Watchdog pages no one.
    assert {r["path"] for r in sink.received} == {"/heartbeat"}


# --- an existing operator: the routing as its AlertmanagerConfig ------------------------------------


def _existing_operator(project, stack: str = "staging", **existing):
    from conftest import edit_stack
    from rollout.load.stack import load_file

    def change(c):
        c["rollout:monitoring"]["install"] = False
        if existing:
            c["rollout:monitoring"]["existing"] = existing

    edit_stack(project, stack, change)
    return load_file(project / "stacks" / f"Pulumi.{stack}.yaml", project)


def _operator_config(config, strategy: str = "OnNamespace") -> dict:
    """The existing Alertmanager's config (kube-prometheus-stack's default) with the stack's
    AlertmanagerConfig converted and added as the operator does it."""
    from rollout.build.alertmanager_config import alertmanager_config_resource, converted, merged, secret_values
    from upstream import chart_defaults

    base = chart_defaults("kube-prometheus-stack")["alertmanager"]["config"]
    return merged(base, converted(alertmanager_config_resource(config), secret_values(config), strategy))


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_the_alertmanager_config_resource_validates_against_the_operators_crd(project, stack):
    import jsonschema

    from rollout.build.alertmanager_config import alertmanager_config_resource
    from upstream import crd_schema

    resource = alertmanager_config_resource(_existing_operator(project, stack))
    jsonschema.Draft7Validator(crd_schema("monitoring.coreos.com", "alertmanagerconfigs", "v1alpha1")).validate(resource)
    assert resource["metadata"]["namespace"] == f"rollout-{stack}"


def test_the_crd_check_catches_a_matcher_the_operator_refuses(project):
    import jsonschema

    from rollout.build.alertmanager_config import alertmanager_config_resource
    from upstream import crd_schema

    resource = alertmanager_config_resource(_existing_operator(project))
    resource["spec"]["route"]["routes"][0]["matchers"][0]["matchType"] = "=="
    resource["spec"]["inhibitRules"][0]["sourceMatch"][0]["matchType"] = "=="
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(crd_schema("monitoring.coreos.com", "alertmanagerconfigs", "v1alpha1")).validate(resource)


def test_every_credential_is_a_reference_to_the_secret_which_is_rendered_with_placeholders(project, tmp_path):
    config = _existing_operator(project, "production")
    render(config, "production", tmp_path)
    resource = (tmp_path / "kubernetes" / "rollout-alertmanagerconfig.yaml").read_text()
    secret = yaml.safe_load((tmp_path / "kubernetes" / "rollout-alertmanager-secret.yaml").read_text())
    assert "secret.invalid" not in resource and "<secret:" not in resource
    document = yaml.safe_load(resource)
    (pagerduty,) = [r for r in document["spec"]["receivers"] if r["name"] == "pagerduty"]
    assert pagerduty["pagerdutyConfigs"][0]["routingKey"] == {"name": "rollout-alertmanager", "key": "pagerdutyRoutingKey"}
    assert secret["stringData"]["pagerdutyRoutingKey"] == "<secret:rollout:secrets.pagerdutyRoutingKey>"
    assert all(v.startswith(("<secret:", "https://secret.invalid/")) for v in secret["stringData"].values())
    # Nothing the chart's Alertmanager would get is rendered: it is not installed.
    assert not (tmp_path / "kubernetes" / "helm").exists()


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_the_converted_config_loads_in_amtool_and_routes_each_alert_of_the_stack_to_its_receivers(project, tmp_path, stack):
    config = _existing_operator(project, stack)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(_operator_config(config)))
    checked = amtool("check-config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prefix = f"rollout-{stack}/rollout/"
    for alert in all_alerts(config):
        labels = {"alertname": alert.name, **alert.rule(config.alerting.runbook_base_url)["labels"], "service": "genesis"}
        assert labels["namespace"] == f"rollout-{stack}"
        if alert.name == "Watchdog":
            # The resource's route continues: the chart's own Watchdog route (to "null") sees it too.
            expected = [prefix + "watchdog", "null"]
        else:
            expected = [prefix + r for r in _expected_receivers(config, labels["priority"], labels["category"], alert.rollback)]
        result = routes_to(path, labels, expected)
        assert result.returncode == 0, (stack, alert.name, result.stdout + result.stderr)


def test_another_namespaces_alert_never_reaches_the_stacks_receivers(project, tmp_path):
    config = _existing_operator(project, "production")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(_operator_config(config)))
    labels = {"alertname": "CanaryErrorRateHigh", "service": "genesis", "priority": "P1", "category": "errors", "rollback": "true"}
    assert routes_to(path, {**labels, "namespace": "rollout-staging"}, ["null"]).returncode == 0
    mine = routes_to(path, {**labels, "namespace": "rollout-production"}, ["rollout-production/rollout/rollback-webhook", "rollout-production/rollout/pagerduty"])
    assert mine.returncode == 0, mine.stdout + mine.stderr


def test_the_resource_routes_like_the_charts_config(project):
    """One routing, two forms: the converted resource, without its prefixes and namespace
    matcher, is the document the chart's Alertmanager would get."""
    from rollout.build.alertmanager_config import alertmanager_config_resource, converted, secret_values

    config = _existing_operator(project, "production")
    part = converted(alertmanager_config_resource(config), secret_values(config))
    chart = alertmanager_config(config)
    text = json.dumps(part).replace("rollout-production/rollout/", "").replace(', "namespace=\\"rollout-production\\""', "").replace('"namespace=\\"rollout-production\\""', "")
    unprefixed = json.loads(text)
    route = unprefixed["route"]
    assert route.pop("continue") is True and route.pop("matchers") == []
    assert route == chart["route"]
    assert unprefixed["receivers"] == chart["receivers"]
    assert unprefixed["inhibit_rules"] == chart["inhibit_rules"]


@pytest.mark.e2e
def test_a_real_alertmanager_routes_and_inhibits_only_the_stacks_own_alerts(project):
    config = _existing_operator(project, "production")
    document = _operator_config(config)
    alerts = [
        {"alertname": "CanaryErrorRateHigh", "service": "genesis", "severity": "critical", "priority": "P1", "category": "errors", "namespace": "rollout-production"},
        {"alertname": "CanaryErrorRateHigh", "service": "genesis", "severity": "warning", "priority": "P3", "category": "errors", "namespace": "rollout-production"},
        # The same alert of another stack in the same Alertmanager: not inhibited by this one's.
        {"alertname": "CanaryErrorRateHigh", "service": "genesis", "severity": "warning", "priority": "P3", "category": "errors", "namespace": "rollout-staging"},
    ]
    expected = {
        ("rollout-production", "critical"): "active",
        ("rollout-production", "warning"): "suppressed",
        ("rollout-staging", "warning"): "active",
    }
    import time

    with WebhookSink() as sink, start_alertmanager(yaml.safe_dump(receivers_to_loopback(document, sink.url))) as am:
        _post_alerts(am.url, [{"labels": labels} for labels in alerts])
        # Inhibition is computed as the alerts arrive; on a loaded machine, give it a moment.
        deadline = time.monotonic() + 15
        while True:
            answer = http_json(f"{am.url}/api/v2/alerts")
            states = {(a["labels"]["namespace"], a["labels"]["severity"]): a["status"]["state"] for a in answer}
            if states == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        status = http_json(f"{am.url}/api/v2/status")
    assert states == expected
    assert "rollout-production/rollout/pagerduty" in status["config"]["original"]
