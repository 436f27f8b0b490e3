"""Every stack's rules, checked and unit-tested by the real promtool.

For every alert, the incident beside its definition (alerts/<category>.py)
becomes a `promtool test rules` case: quiet before its `for`, firing after it
with exactly the expected labels and annotations, and quiet on healthy traffic.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts.catalogue import all_alerts
from alerts.model import Alert
from alerts.series import Series
from conftest import FIXTURE, STACKS, edit_stack
from rollout.model import conventions
from rollout.load.stack import load_file, load_stack
from rollout.build.render import render

pytestmark = pytest.mark.slow

TEMPLATE = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _expected(alert: Alert, config) -> dict:
    labels = {**alert.rule(config.alerting.runbook_base_url)["labels"], **alert.scenario.labels}
    annotations = {
        key: TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), value)
        for key, value in alert.rule(config.alerting.runbook_base_url)["annotations"].items()
    }
    return {"exp_labels": labels, "exp_annotations": annotations}


def _series(values: dict[str, str]) -> list[dict]:
    return [{"series": series, "values": notation} for series, notation in values.items()]


def _alerts_series(alert: Alert, config, state: str) -> str:
    """The ALERTS series Prometheus writes for ``alert`` in ``state``, as promtool's label notation."""
    labels = {**_expected(alert, config)["exp_labels"], "alertname": alert.name, "alertstate": state}
    return "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _cases(alert: Alert, config) -> list[dict]:
    scenario = alert.scenario
    firing = [_expected(alert, config)]
    quiet_in_incident = firing if scenario.always else []
    quiet_healthy = firing if scenario.always else []
    incident = {
        "name": f"{alert.name} is quiet before its for, then fires with its labels and annotations",
        "interval": scenario.interval,
        "input_series": _series(scenario.incident),
        "alert_rule_test": [
            {"eval_time": scenario.quiet_at, "alertname": alert.name, "exp_alerts": quiet_in_incident},
            {"eval_time": scenario.firing_at, "alertname": alert.name, "exp_alerts": firing},
        ],
    }
    healthy = {
        "name": f"{alert.name} stays quiet on healthy traffic",
        "interval": scenario.interval,
        "input_series": _series(scenario.healthy),
        "alert_rule_test": [
            {"eval_time": scenario.quiet_at, "alertname": alert.name, "exp_alerts": quiet_healthy},
            {"eval_time": scenario.firing_at, "alertname": alert.name, "exp_alerts": quiet_healthy},
        ],
    }
    if not scenario.always:
        selector = f'ALERTS{{alertname="{alert.name}"}}'
        if alert.for_ != "0s":
            # Quiet because its for has not passed, not because the condition
            # is false: the incident already holds the alert pending.
            incident["promql_expr_test"] = [
                {
                    "expr": selector,
                    "eval_time": scenario.quiet_at,
                    "exp_samples": [{"labels": _alerts_series(alert, config, "pending"), "value": 1}],
                }
            ]
        # Healthy traffic never even starts the for.
        healthy["promql_expr_test"] = [
            {"expr": selector, "eval_time": at, "exp_samples": []} for at in (scenario.quiet_at, scenario.firing_at)
        ]
    return [incident, healthy]


def _test_file(rendered: Path, config, tests: list[dict], evaluation_interval: str | None = None, name: str = "rules_test") -> Path:
    rules = sorted(str(p.relative_to(rendered / "prometheus")) for p in (rendered / "prometheus" / "rules").glob("*.yaml"))
    document = {
        "rule_files": rules,
        "evaluation_interval": evaluation_interval or f"{int(config.monitoring.evaluation_interval.total_seconds())}s",
        "tests": tests,
    }
    path = rendered / "prometheus" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
    return path


@pytest.fixture(scope="module", params=STACKS)
def rendered(request, tmp_path_factory):
    stack = request.param
    out = tmp_path_factory.mktemp(f"rules-{stack}")
    config = load_stack(stack, FIXTURE)
    render(config, stack, out)
    return stack, config, out


def test_promtool_accepts_the_prometheus_config_and_its_rules(rendered):
    stack, _, out = rendered
    result = promtool("check", "config", "prometheus/prometheus.yml", cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_every_rule_file(rendered):
    stack, _, out = rendered
    files = sorted(str(p) for p in (out / "prometheus" / "rules").glob("*.yaml"))
    result = promtool("check", "rules", *files, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_its_incident_and_stays_quiet_on_healthy_traffic(rendered):
    stack, config, out = rendered
    # Incidents that last hours are sampled (and evaluated) coarsely, in a file
    # of their own, so the suite does not evaluate every rule every 15 s for a day.
    by_interval: dict[str, list[dict]] = {}
    for alert in all_alerts(config):
        cases = _cases(alert, config)
        if alert.scenario.safety_flag_on:
            # The incident is a stack edit (test_a_safety_flag_switched_on_fires_its_alert);
            # the shipped stacks have every safety flag off, so it stays quiet here.
            assert not config.safety_flags_on(), stack
            cases = cases[1:]
        by_interval.setdefault(alert.scenario.interval, []).extend(cases)
    for interval, tests in sorted(by_interval.items()):
        evaluation = None if interval == alert_interval(config) else interval
        path = _test_file(out, config, tests, evaluation, name=f"rules_test_{interval}")
        result = promtool("test", "rules", str(path.relative_to(out)), cwd=out)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
        assert "SUCCESS" in result.stdout


def alert_interval(config) -> str:
    return f"{int(config.monitoring.scrape_interval.total_seconds())}s"


def test_a_safety_flag_switched_on_fires_its_alert(project, tmp_path):
    edit_stack(
        project,
        "staging",
        lambda c: c["rollout:flags"]["maintenance_mode"].update(enabled=True, reason="database migration"),
    )
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    render(config, "staging", tmp_path)
    (alert,) = [a for a in all_alerts(config) if a.scenario.safety_flag_on]
    tests = [
        {
            "name": "SafetyFlagEnabled fires while a safety flag is on",
            "interval": "15s",
            "input_series": [],
            "alert_rule_test": [
                {"eval_time": alert.scenario.firing_at, "alertname": alert.name, "exp_alerts": [_expected(alert, config)]}
            ],
        }
    ]
    path = _test_file(tmp_path, config, tests)
    result = promtool("test", "rules", str(path.relative_to(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def test_a_quiet_canarys_few_failures_do_not_fire_the_comparison_with_stable_a_busier_ones_do(tmp_path):
    # 20 % errors either way, against a stable track failing nothing: under triggerMinRequests
    # (1000 in 30m) the canary is too quiet to tell, above it the comparison fires.
    config = load_stack("staging", FIXTURE)
    render(config, "staging", tmp_path)
    (alert,) = [a for a in all_alerts(config) if a.name == "CanaryWorseThanStable"]
    s = Series(config)

    def case(name: str, per_step: int, firing: bool) -> dict:
        series = {**s.traffic("stable", 1000), **s.traffic("canary", per_step, errors_per_step=per_step // 5, steps=240)}
        return {"name": name, "interval": "15s", "input_series": _series(series),
                "alert_rule_test": [{"eval_time": "50m", "alertname": alert.name,
                                     "exp_alerts": [_expected(alert, config)] if firing else []}]}

    tests = [case("5 requests per scrape: 600 in 30m, quiet", 5, False),
             case("10 requests per scrape: 1200 in 30m, firing", 10, True)]
    path = _test_file(tmp_path, config, tests, name="quiet_canary_test")
    result = promtool("test", "rules", str(path.relative_to(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def test_the_full_catalogue_has_at_least_30_alerts_and_development_at_least_18():
    for stack in STACKS:
        config = load_stack(stack, FIXTURE)
        names = {a.name for a in all_alerts(config)}
        minimum = 30 if config.monitoring.catalogue == "full" else 18
        assert len(names) >= minimum, (stack, len(names))


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_carries_the_labels_and_annotations_routing_and_runbooks_need(stack):
    config = load_stack(stack, FIXTURE)
    for alert in all_alerts(config):
        rule = alert.rule(config.alerting.runbook_base_url)
        assert list(rule)[0] == "alert"
        assert rule["labels"]["severity"] in conventions.SEVERITIES
        assert rule["labels"]["priority"] in conventions.PRIORITIES
        assert rule["labels"]["category"] in conventions.CATEGORIES
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"].endswith(f"/{alert.name}.md")


def test_every_category_of_the_design_has_alerts():
    config = load_stack("production", FIXTURE)
    categories = {a.category for a in all_alerts(config)}
    assert categories == set(conventions.CATEGORIES)


def test_the_canary_rollback_triggers_use_the_stacks_thresholds(project):
    edit_stack(project, "staging", lambda c: c["rollout:canary"].update(maxErrorRatio=0.02, sustainFor="7m"))
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    (rule,) = [a for a in all_alerts(config) if a.name == "CanaryErrorRateHigh"]
    assert rule.expr.endswith("> 0.02")
    assert rule.for_ == "7m"
    assert rule.rollback


def test_a_priority_override_changes_the_alerts_priority_label(project):
    edit_stack(project, "staging", lambda c: c["rollout:alerting"].update(priorities={"ServiceLatencyP99High": "P1"}))
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    (alert,) = [a for a in all_alerts(config) if a.name == "ServiceLatencyP99High"]
    assert alert.rule(config.alerting.runbook_base_url)["labels"]["priority"] == "P1"


def _with_more_services(document: dict) -> None:
    """Staging with two more services: exodus still at weight 0, leviticus at 25."""
    genesis = document["rollout:services"][0]
    history = genesis["rollout"]["history"]
    exodus = {**genesis, "name": "exodus", "rollout": {"plan": "safe", "history": history[:1]}}
    leviticus = {
        **genesis,
        "name": "leviticus",
        "rollout": {"plan": "safe", "history": [*history, {"weight": 25, "startedAt": "2026-11-19T09:00:00Z"}]},
    }
    document["rollout:services"] += [exodus, leviticus]


def test_no_traffic_rules_exist_per_service_whose_canary_weight_is_above_zero(project, tmp_path):
    edit_stack(project, "staging", _with_more_services)
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    render(config, "staging", tmp_path)
    rules = [a for a in all_alerts(config) if a.name == "CanaryNoTraffic"]
    assert sorted((a.scenario.labels["service"], "25 %" in a.description) for a in rules) == [
        ("genesis", False),
        ("leviticus", True),
    ]
    files = sorted(str(p) for p in (tmp_path / "prometheus" / "rules").glob("*.yaml"))
    checked = promtool("check", "rules", *files, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # genesis's canary serves, exodus's and leviticus's do not: only leviticus,
    # whose weight says it should, is reported, and its description says 25 %.
    (leviticus,) = [a for a in rules if a.scenario.labels["service"] == "leviticus"]
    genesis = Series(config, "genesis")
    series = {
        **genesis.traffic("stable", 100),
        **genesis.traffic("canary", 100),
        **leviticus.scenario.incident,
        **Series(config, "exodus").traffic("stable", 100),
    }
    tests = [
        {
            "name": "Only the service whose canary should get traffic and gets none is reported",
            "interval": leviticus.scenario.interval,
            "input_series": _series(series),
            "alert_rule_test": [
                {"eval_time": leviticus.scenario.firing_at, "alertname": "CanaryNoTraffic", "exp_alerts": [_expected(leviticus, config)]}
            ],
        }
    ]
    path = _test_file(tmp_path, config, tests)
    result = promtool("test", "rules", str(path.relative_to(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def test_the_short_window_trigger_follows_the_stacks_budget(project):
    def change(c):
        c["rollout:canary"].update(maxErrorRatio=0.02, fastTriggerFactor=5, fastTriggerWindow="2m", fastTriggerMinRequests=50)

    edit_stack(project, "staging", change)
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    (rule,) = [a for a in all_alerts(config) if a.name == "CanaryErrorRateCritical"]
    assert ") >= 0.1\n" in rule.expr and "[2m]" in rule.expr and "[1m]" not in rule.expr
    assert rule.expr.endswith(">= 50")
    assert rule.for_ == "1m" and rule.rollback


def test_the_short_window_threshold_is_capped_at_every_request(project):
    edit_stack(project, "staging", lambda c: c["rollout:canary"].update(maxErrorRatio=0.2))
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    (rule,) = [a for a in all_alerts(config) if a.name == "CanaryErrorRateCritical"]
    assert ") >= 1\n" in rule.expr
