"""The config model: good stacks load, each bad one fails naming file, key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURE, STACKS, edit_stack
from rollout.model.config import AllAtOnceFlag, CanaryFlag, PercentageFlag, ProgressiveFlag, SecretRef
from rollout.model.errors import ConfigError
from rollout.load.stack import load_file, load_stack

CRITICAL = (
    "orchestration",
    "security_hardening",
    "llm_integration",
    "error_handling",
    "otel_tracing",
    "performance_optimizations",
    "reward_learning",
    "phase_1",
    "phase_2",
    "phase_3",
)
SAFETY = ("emergency_shutdown", "read_only_mode", "maintenance_mode")


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_loads(stack):
    config = load_stack(stack, FIXTURE)
    assert config.services[0].name == "genesis"


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_carries_exactly_the_services_flag_set(stack):
    flags = load_stack(stack, FIXTURE).flags
    assert set(flags) == set(CRITICAL) | set(SAFETY) | {"aatc", "phase_4_deployment"}
    for key in CRITICAL:
        assert isinstance(flags[key], AllAtOnceFlag) and flags[key].enabled, key
    for key in SAFETY:
        assert isinstance(flags[key], AllAtOnceFlag) and not flags[key].enabled, key
    assert isinstance(flags["phase_4_deployment"], ProgressiveFlag)
    steps = [(s.after.days, s.percentage) for s in flags["phase_4_deployment"].steps]
    assert steps == [(0, 0), (1, 5), (2, 10), (3, 25), (4, 50), (5, 75), (6, 100)]
    assert isinstance(flags["aatc"], (PercentageFlag, CanaryFlag))


def test_production_runs_aatc_at_no_more_than_stagings_percentage():
    production, staging = load_stack("production", FIXTURE).flags["aatc"], load_stack("staging", FIXTURE).flags["aatc"]
    assert production.percentage <= staging.percentage


def test_secrets_in_the_stack_file_load_as_references_without_values():
    secret = load_stack("production", FIXTURE).secrets.pagerduty_routing_key
    assert isinstance(secret, SecretRef)
    assert secret.value is None
    assert secret.placeholder == "<secret:rollout:secrets.pagerdutyRoutingKey>"


def _set(path: str, value):
    """A change that sets a dotted path (``rollout:flags.aatc.percentage``) in the config."""

    def change(config):
        head, *rest = path.split(".")
        if not rest:
            config[head] = value
            return
        node = config.setdefault(head, {})
        for part in rest[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = rest[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _delete(path: str):
    def change(config):
        head, *rest = path.split(".")
        node = config[head]
        for part in rest[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if rest:
            del node[rest[-1]]
        else:
            del config[head]

    return change


BAD = [
    pytest.param(
        "staging", _set("rollout:flags.aatc.strategy", "gradual"),
        "rollout:flags.aatc: 'gradual' is not a known strategy; allowed: all_at_once, percentage, progressive, canary",
        id="an unknown strategy names the flag and lists the strategies",
    ),
    pytest.param(
        "production", _set("rollout:flags.aatc.percentage", 130),
        "rollout:flags.aatc.percentage: 130 is not between 0 and 100",
        id="a percentage above 100 names flags.aatc.percentage",
    ),
    pytest.param(
        "staging", _set("rollout:flags.aatc.percentage", -5),
        "rollout:flags.aatc.percentage: -5 is not between 0 and 100",
        id="a negative percentage is refused",
    ),
    pytest.param(
        "staging", _set("rollout:flags.phase_4_deployment.steps.2.after", "1d"),
        "rollout:flags.phase_4_deployment.steps[2].after: 1d is not later than the step before (1d)",
        id="a progressive schedule that does not move forward in time is refused",
    ),
    pytest.param(
        "staging", _set("rollout:flags.phase_4_deployment.steps.3.percentage", 10),
        "rollout:flags.phase_4_deployment.steps[3].percentage: 10 is not above the step before (10)",
        id="a progressive schedule that does not increase in percentage is refused",
    ),
    pytest.param(
        "staging", _set("rollout:flags.phase_4_deployment.start", "2026-11-20T09:00:00"),
        "rollout:flags.phase_4_deployment.start: 2026-11-20T09:00:00 has no time zone",
        id="a progressive start without a time zone is refused",
    ),
    pytest.param(
        "staging", _set("rollout:flags.emergency_shutdown.enabled", True),
        "rollout:flags.emergency_shutdown.reason: switching the safety flag emergency_shutdown on needs a reason",
        id="a safety flag switched on without a reason is refused",
    ),
    pytest.param(
        "staging", _set("rollout:flags.read_only_mode", {"strategy": "percentage", "percentage": 50}),
        "rollout:flags.read_only_mode.strategy: percentage is not allowed for a safety flag; allowed: all_at_once",
        id="a safety flag on a percentage is refused",
    ),
    pytest.param(
        "staging", _set("rollout:flags.Bad-Key", {"strategy": "all_at_once", "enabled": True}),
        "rollout:flags.Bad-Key: is not a valid flag key",
        id="a flag key that is not snake_case is refused",
    ),
    pytest.param(
        "staging", _set("rollout:colour", "blue"),
        "rollout:colour: unknown key; allowed: ",
        id="an unknown top-level key is refused",
    ),
    pytest.param(
        "staging", _set("rollout:monitoring.storage.sise", "10Gi"),
        "rollout:monitoring.storage.sise: unknown key; allowed: persistent, protect, size, storageClass",
        id="an unknown nested key lists the keys allowed there",
    ),
    pytest.param(
        "staging", _set("rollout:flags.aatc.rollout", 5),
        "rollout:flags.aatc.rollout: unknown key; allowed: description, percentage, strategy",
        id="an unknown key in a flag lists that strategy's keys",
    ),
    pytest.param(
        "staging", _set("rollout:services.0.stable.replica", 2),
        "rollout:services[0].stable.replica: unknown key; allowed: image, previousImage, replicas",
        id="an unknown key in a service names its index",
    ),
    pytest.param(
        "staging", _set("rollout:monitoring.scrapeInterval", "often"),
        "rollout:monitoring.scrapeInterval: 'often' is not a duration",
        id="a duration that does not parse is refused",
    ),
    pytest.param(
        "staging", _set("rollout:target", "nomad"),
        "rollout:target: 'nomad' is not allowed; allowed: docker, kubernetes",
        id="an unknown target lists the targets",
    ),
    pytest.param(
        "staging", _delete("rollout:kubernetes"),
        "rollout:kubernetes: is required when target is kubernetes",
        id="a kubernetes stack without its kubernetes settings is refused",
    ),
    pytest.param(
        "staging", _delete("rollout:alerting.email"),
        "rollout:alerting.email: is required",
        id="a missing required key is named",
    ),
    pytest.param(
        "dev", _set("rollout:flags.aatc.service", "exodus"),
        "rollout:flags.aatc.service: 'exodus' is not a service of this stack; allowed: genesis",
        id="a canary flag for an unknown service is refused",
    ),
    pytest.param(
        "production", _set("rollout:flags.aatc.percentage", 40),
        "rollout:flags.aatc.percentage: 40 is above staging's 25",
        id="production running a percentage flag above staging is refused",
    ),
    pytest.param(
        "production", _set("rollout:secrets.pagerdutyRoutingKey", "R0UTINGKEY"),
        "rollout:secrets.pagerdutyRoutingKey: must be stored as a secret",
        id="a secret written in clear text is refused",
    ),
    pytest.param(
        "production", _set("rollout:alerting.slack.warningsChannel", {"secure": "v1:OVvnlk2Z70tgsohv:1nTyWRF4IbxjTdBu0ua8bkYlLu+yUn/AQHhaBfZJItw="}),
        "rollout:alerting.slack.warningsChannel: is stored as a secret, but only keys under rollout:secrets may be secrets",
        id="a secret outside rollout:secrets is refused",
    ),
    pytest.param(
        "production", _delete("rollout:secrets.pagerdutyRoutingKey"),
        "rollout:secrets.pagerdutyRoutingKey: is required (a secret) because alerting.pagerduty is on",
        id="production without a PagerDuty key is refused",
    ),
    pytest.param(
        "production", _set("rollout:alerting.pagerduty", False),
        "rollout:alerting.pagerduty: false is not allowed in production, which must page",
        id="production that does not page is refused",
    ),
    pytest.param(
        "staging", _set("rollout:services.0.rollout.history.2.weight", 15),
        "rollout:services[0].rollout.history[2].weight: 15 is not a stage of plan safe; allowed: 0, 5, 10, 25, 50, 75, 100",
        id="a history weight that is not a stage of the plan is refused",
    ),
    pytest.param(
        "staging", _set("rollout:services.0.rollout.history.2.startedAt", "2026-11-01T00:00:00Z"),
        "rollout:services[0].rollout.history[2].startedAt: is earlier than history[1].startedAt",
        id="a history edited out of time order is refused",
    ),
    pytest.param(
        "staging", _set("rollout:services.0.rollout.plan", "custom"),
        "rollout:services[0].rollout.stages: is required with plan: custom",
        id="a custom plan without stages is refused",
    ),
    pytest.param(
        "staging",
        lambda c: c["rollout:services"][0]["rollout"].update(
            plan="custom", stages=[{"weight": 0, "soak": "1h"}, {"weight": 50, "soak": "1h"}]
        ),
        "rollout:services[0].rollout.stages: [0, 50] must end at 100",
        id="a custom plan that does not end at 100 is refused",
    ),
    pytest.param(
        "staging", _set("rollout:alerting.priorities", {"ServiceDown": "P5"}),
        "rollout:alerting.priorities.ServiceDown: 'P5' is not allowed; allowed: P0, P1, P2, P3, P4",
        id="an unknown priority lists the priorities",
    ),
    pytest.param(
        "staging", _set("rollout:alerting.priorities", {"ServiceDwn": "P1"}),
        "rollout:alerting.priorities.ServiceDwn: no alert of this stack is named 'ServiceDwn'",
        id="a priority override for an alert that does not exist is refused",
    ),
    pytest.param(
        "staging", _set("rollout:canary.maxErrorRatio", 1.5),
        "rollout:canary.maxErrorRatio: 1.5 is not a ratio strictly between 0 and 1",
        id="a threshold out of range is refused",
    ),
    pytest.param(
        "staging", _set("rollout:services.0.resources.limits.memory", "lots"),
        "rollout:services[0].resources.limits.memory: 'lots' is not a Kubernetes quantity",
        id="a resource quantity that Kubernetes would refuse is refused",
    ),
]


@pytest.mark.parametrize("stack, change, expected", BAD)
def test_a_bad_config_fails_naming_the_file_and_the_key(project: Path, stack, change, expected):
    path = edit_stack(project, stack, change)
    with pytest.raises(ConfigError) as caught:
        load_file(path, project)
    message = str(caught.value)
    assert f"stacks/Pulumi.{stack}.yaml: {expected}" in message, message


GOOD = [
    pytest.param(
        lambda c: c["rollout:flags"]["maintenance_mode"].update(enabled=True, reason="database migration"),
        id="a safety flag switched on with a reason loads",
    ),
    pytest.param(
        lambda c: c["rollout:services"][0]["rollout"].update(
            plan="custom",
            stages=[{"weight": 0, "soak": "1h"}, {"weight": 10, "soak": "2h"}, {"weight": 100, "soak": "1h"}],
            history=[{"weight": 0, "startedAt": "2026-11-20T00:00:00Z"}],
        ),
        id="a valid custom plan loads",
    ),
    pytest.param(
        lambda c: c["rollout:flags"].update(
            aatc={"strategy": "canary", "service": "genesis", "percentage": 50}
        ),
        id="a canary flag with a percentage loads",
    ),
]


@pytest.mark.parametrize("change", GOOD)
def test_a_good_variant_loads(project: Path, change):
    load_file(edit_stack(project, "staging", change), project)


def _write(project: Path, text: bytes | str) -> Path:
    path = project / "stacks" / "Pulumi.broken.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


FILES = [
    pytest.param("", "stacks/Pulumi.broken.yaml: is empty", id="an empty file"),
    pytest.param(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00",
        "stacks/Pulumi.broken.yaml: is not a UTF-8 text file",
        id="a binary file",
    ),
    pytest.param(
        "config:\n  rollout:target: [kubernetes\n",
        "stacks/Pulumi.broken.yaml: line 3, column 1:",
        id="a YAML syntax error gives its line",
    ),
    pytest.param(
        "config:\n  rollout:flags:\n    aatc: {strategy: percentage, percentage: 5}\n    aatc: {strategy: percentage, percentage: 9}\n",
        "stacks/Pulumi.broken.yaml: line 4, column 5: duplicate key 'aatc' (first at line 3)",
        id="a duplicate flag is refused with both lines",
    ),
    pytest.param("- a\n- b\n", "must be a mapping with a config: key", id="a list instead of a mapping"),
    pytest.param("conifg: {}\n", "stacks/Pulumi.broken.yaml: conifg: unknown key", id="a misspelt top-level key"),
]


@pytest.mark.parametrize("text, expected", FILES)
def test_a_broken_file_fails_with_one_clear_message(project: Path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load_file(_write(project, text), project)
    assert expected in str(caught.value)


@pytest.mark.parametrize("value", ["staging\n", "stag ing", "a;b", "x%%{init}", "", "s" * 101, "staging:prod"])
def test_promotes_from_must_be_a_stack_name(project, value):
    edit_stack(project, "production", lambda c: c.__setitem__("rollout:promotesFrom", value))
    with pytest.raises(ConfigError) as caught:
        load_stack("production", project)
    (line,) = str(caught.value).splitlines()
    assert line.startswith("stacks/Pulumi.production.yaml: rollout:promotesFrom: ")
    assert "must be a stack name" in line
