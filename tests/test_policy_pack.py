"""The policy pack as Pulumi runs it: policies/__main__.py in its own process, asked over gRPC.

Constructing the PolicyPack serves Pulumi's analyzer protocol on 127.0.0.1 (on a
free port it prints) and blocks. These tests start the real entry point, talk to
it with Pulumi's own analyzer stubs as the engine does during ``pulumi preview
--policy-pack policies``, and stop it afterwards, also on failure. The resources
are what the program declares under the mocks, sent as the engine sends them:
secret inputs wrapped in Pulumi's secret signature, numbers as protobuf doubles.
"""

from __future__ import annotations

import copy
import json
import os
import select
import signal
import subprocess
import sys

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from conftest import FIXTURE, ROOT, edit_stack
from policies import rules
from rollout.engine.harness import run_program

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
GATES = [p.name for p in rules.POLICIES if p.always_mandatory]
RESOURCE_POLICIES = [p.name for p in rules.POLICIES if not p.always_mandatory]
#: Credential-shaped values for the stack secrets, so a policy that mistook a
#: secret input for clear text would show it.
SECRETS = {
    "pagerdutyRoutingKey": "R0UT1NGKEY0123456789abcdef012345",
    "slackWarningsWebhookUrl": "https://hooks.slack.com/services/T0000/B0000/warningswarningswarnings",
    "slackDeploymentsWebhookUrl": "https://hooks.slack.com/services/T0000/B0001/deploymentsdeployments",
    "smtpPassword": "smtp-password-0123456789",
    "rollbackWebhookUrl": "https://ci.example.com/hooks/rollback?token=0123456789abcdef",
}


@pytest.fixture(scope="module")
def pack():
    """The real pack process and a client stub; the process is stopped whatever happens."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "policies" / "__main__.py")],
        cwd=ROOT / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    channel = None
    try:
        # Bounded wait for the port line, so a pack that never starts fails the
        # test instead of hanging it.
        ready, _, _ = select.select([process.stdout], [], [], 120)
        line = process.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            process.kill()
            raise AssertionError(f"the pack printed no port: {line!r}; stderr: {process.stderr.read().decode()[-2000:]}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=60)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        if channel is not None:
            channel.close()
        # The pack stops its server on KeyboardInterrupt.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def _wire(value, path: str, secret_paths: set[str]):
    """A resource input as the engine sends it: secret paths wrapped in the secret signature."""
    if path and path in secret_paths:
        return {SIG_KEY: SECRET_SIG, "value": _wire(value, "", set())}
    if isinstance(value, dict):
        return {k: _wire(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value


def _request(resources) -> analyzer_pb2.AnalyzeStackRequest:
    request = analyzer_pb2.AnalyzeStackRequest()
    for resource in resources:
        properties = struct_pb2.Struct()
        properties.update(json.loads(json.dumps(_wire(resource.inputs, "", resource.secret_paths), default=str)))
        request.resources.append(
            analyzer_pb2.AnalyzerResource(
                type=resource.type, name=resource.name, urn=resource.urn, parent=resource.parent or "", properties=properties
            )
        )
    return request


def _configure(pack, deployed_state=None, evidence=None, advisory=False) -> None:
    """Policy config as CI hands it to the engine; levels as the engine resolves them
    (the policy's own level unless the config sets one)."""
    levels = {}
    for name in GATES:
        properties = struct_pb2.Struct()
        if deployed_state is not None:
            properties.update({"deployedState": deployed_state})
        if evidence is not None:
            properties.update({"evidence": evidence})
        levels[name] = analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY, properties=properties)
    for name in RESOURCE_POLICIES:
        level = analyzer_pb2.ADVISORY if advisory else analyzer_pb2.MANDATORY
        levels[name] = analyzer_pb2.PolicyConfig(enforcementLevel=level)
    pack.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=levels))


def _state(run) -> dict:
    return run.named(rules.STATE_STASH).inputs["input"]


def _diagnostics(pack, resources) -> list[tuple[str, str, str]]:
    response = pack.AnalyzeStack(_request(resources))
    return sorted(
        (d.policyName, analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel), d.message) for d in response.diagnostics
    )


def test_the_served_pack_holds_exactly_the_policies_of_the_module(pack):
    info = pack.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "rollout"
    assert [p.name for p in info.policies] == [p.name for p in rules.POLICIES]
    by_name = {p.name: p for p in rules.POLICIES}
    for served in info.policies:
        policy = by_name[served.name]
        assert (served.description, served.remediation_steps) == (policy.description, policy.remediation)
        assert served.policy_type == analyzer_pb2.POLICY_TYPE_STACK
        assert served.enforcementLevel == analyzer_pb2.MANDATORY
    # The gates take their evidence from policy config; the schema says where.
    assert {p.name for p in info.policies if "evidence" in p.configSchema.properties} == set(GATES)


@pytest.fixture(scope="module")
def production():
    return run_program("production", FIXTURE, secret_values=SECRETS)


def test_production_as_deployed_passes_every_policy_with_real_looking_secrets(pack, production):
    _configure(pack, deployed_state=_state(production))
    assert _diagnostics(pack, production.resources) == []


def test_a_route_summing_to_90_is_a_mandatory_violation_of_the_route_policy(pack, production):
    resources = copy.deepcopy(production.resources)
    (route,) = [r for r in resources if r.type == rules.HTTPROUTE]
    route.inputs["spec"]["rules"][0]["backendRefs"][0]["weight"] -= 10
    _configure(pack, deployed_state=_state(production))
    found = _diagnostics(pack, resources)
    assert [(policy, level) for policy, level, _ in found] == [("rollout-route-weights", "MANDATORY")]
    assert "sum to 90, not 100" in found[0][2]


def test_an_advance_without_evidence_is_refused_and_a_rollback_is_not(pack, production):
    state = _state(production)
    (name,) = state["services"]
    weight = state["services"][name]["weight"]
    assert weight > 0, "production's shipped stack is expected to be mid-rollout"

    lower = copy.deepcopy(state)
    lower["services"][name]["weight"] = 0
    _configure(pack, deployed_state=lower)
    advance = _diagnostics(pack, production.resources)
    assert advance and all(level == "MANDATORY" for _, level, _ in advance)
    assert rules.GATE_POLICIES["rollout-canary-within-budget"].name in {policy for policy, _, _ in advance}

    higher = copy.deepcopy(state)
    higher["services"][name]["weight"] = 100
    _configure(pack, deployed_state=higher)
    assert _diagnostics(pack, production.resources) == []


def test_outside_production_the_resource_policies_report_as_advisory(pack, project):
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["canary"].update(image="ghcr.io/example/genesis:latest"))
    run = run_program("staging", project)
    _configure(pack, deployed_state=_state(run), advisory=True)
    found = _diagnostics(pack, run.resources)
    assert found and {(policy, level) for policy, level, _ in found} == {("rollout-pinned-images", "ADVISORY")}


def test_a_credential_in_a_plain_input_is_caught_even_inside_a_list(pack, production):
    resources = copy.deepcopy(production.resources)
    (canary,) = [r for r in resources if r.type == rules.DEPLOYMENT and r.name.endswith("-canary")]
    container = canary.inputs["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "SLACK_URL", "value": SECRETS["slackWarningsWebhookUrl"]})
    _configure(pack, deployed_state=_state(production))
    found = _diagnostics(pack, resources)
    assert [(policy, level) for policy, level, _ in found] == [("rollout-no-clear-secrets", "MANDATORY")]
    assert canary.name in found[0][2] and SECRETS["slackWarningsWebhookUrl"] not in found[0][2]


def test_production_paging_without_pagerduty_is_caught_by_the_served_pack(pack, production):
    resources = copy.deepcopy(production.resources)
    for resource in resources:
        if resource.type == rules.CHART and resource.inputs.get("chart") == "kube-prometheus-stack":
            config = resource.inputs["values"]["alertmanager"]["config"]
            for receiver in config["receivers"]:
                receiver.pop("pagerduty_configs", None)
    _configure(pack, deployed_state=_state(production))
    found = _diagnostics(pack, resources)
    assert {(policy, level) for policy, level, _ in found} == {("rollout-pages-reach-pagerduty", "MANDATORY")}


def test_the_committed_advisory_config_lowers_exactly_the_resource_policies():
    from policies.pack import advisory_config

    committed = json.loads((ROOT / "policies" / "config" / "advisory.json").read_text())
    assert committed == advisory_config()
    assert set(committed) == set(RESOURCE_POLICIES) and set(committed).isdisjoint(GATES)


@pytest.mark.parametrize(
    "args, resource_level",
    [
        (["--stack", "production"], None),
        (["--stack", "production", "--rollback"], "advisory"),
        (["--stack", "staging"], "advisory"),
    ],
    ids=["production's resource policies stay mandatory for an up",
         "a rollback's up lowers them to advisory even in production",
         "outside production they are advisory anyway"],
)
def test_the_config_writer_lowers_resource_policies_for_a_rollback(capsys, args, resource_level):
    from policies.pack import main

    assert main(args) == 0
    config = json.loads(capsys.readouterr().out)
    assert {config.get(name) for name in RESOURCE_POLICIES} == {resource_level}
    # The gates get what they judge against (the deployed state and its source), never a lower level.
    for gate in GATES:
        assert isinstance(config[gate], dict) and "enforcementLevel" not in config[gate], config[gate]
        assert config[gate]["deployedStateSource"], "the gates stay mandatory: they never refuse a rollback"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stack", "nope"], "no such stack file"),
        (["--stack", "staging", "--evidence", "/nonexistent/e.json"], "policies.pack: --evidence /nonexistent/e.json: no such file"),
    ],
    ids=["an unknown stack", "a missing evidence file"],
)
def test_the_config_writer_refuses_bad_input_with_exit_2(capsys, args, message):
    from policies.pack import main

    assert main(args) == 2
    assert message in capsys.readouterr().err
