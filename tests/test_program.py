"""The real program, run per stack under Pulumi's mocks: what it declares and what it refuses."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURE, KUBERNETES_STACKS, STACKS, without_secrets
from rollout.build.artifacts import build_artifacts
from rollout.engine.harness import config_for_mocks, run_program
from rollout.load.stack import load_stack

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def runs():
    return {stack: run_program(stack, FIXTURE) for stack in STACKS}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_a_kubernetes_stack_declares_the_flag_configmap_with_the_rendered_document(runs, stack):
    expected = build_artifacts(load_stack(stack, FIXTURE), stack).flags_json
    config_maps = [r for r in runs[stack].of_type(CONFIGMAP) if "flags.json" in r.inputs.get("data", {})]
    assert len(config_maps) == 1
    flags = config_maps[0]
    assert flags.inputs["data"]["flags.json"] == expected
    assert flags.inputs["metadata"]["namespace"] == load_stack(stack, FIXTURE).kubernetes.namespace
    assert flags.parent_name == "rollout-flags", "the ConfigMap belongs to the FeatureFlags component"


def test_the_dev_stack_renders_manifests_to_a_folder_instead_of_a_cluster(runs):
    providers = runs["dev"].of_type("pulumi:providers:kubernetes")
    assert len(providers) == 1
    assert providers[0].inputs["renderYamlToDirectory"].endswith("build/dev/manifests")
    for stack in ("staging", "production"):
        (provider,) = runs[stack].of_type("pulumi:providers:kubernetes")
        assert "renderYamlToDirectory" not in provider.inputs


def test_the_docker_stack_mounts_the_flag_file_as_a_directory_into_flagd(runs):
    flagd = [r for r in runs["local"].of_type(CONTAINER) if r.name == "rollout-flags-flagd"]
    assert len(flagd) == 1
    (mount,) = flagd[0].inputs["mounts"]
    assert mount["type"] == "bind"
    assert mount["target"] == "/etc/flagd"
    assert mount["source"].endswith("build/local/flags")
    assert "file:/etc/flagd/flags.json" in flagd[0].inputs["command"]


def test_every_stack_exports_its_flag_document(runs):
    for stack in STACKS:
        document = json.loads(runs[stack].outputs["flagsDocument"])
        assert set(document["flags"]) == set(load_stack(stack, FIXTURE).flags)


def test_secret_values_stay_secret_in_every_declared_input(runs):
    # The harness hands the program the stack's secrets as their placeholders;
    # no placeholder may reach an input that is not marked secret.
    for stack in STACKS:
        for resource in runs[stack].resources:
            text = json.dumps(without_secrets(resource.inputs, resource.secret_paths))
            assert "<secret:rollout:secrets." not in text, (stack, resource.type, resource.name)


def test_a_traced_secret_value_reaches_no_plain_input_or_output():
    marker = "s3cr3t-routing-key-e2e9"
    run = run_program("production", FIXTURE, secret_values={"pagerdutyRoutingKey": marker})
    for resource in run.resources:
        assert marker not in json.dumps(without_secrets(resource.inputs, resource.secret_paths)), resource.name
    plain_outputs = {k: v for k, v in run.outputs.items() if k not in run.secret_outputs}
    assert marker not in json.dumps(plain_outputs)


BROKEN = [
    pytest.param("rollout:flags", lambda f: f["aatc"].update(percentage=130), "rollout:flags.aatc.percentage", id="a percentage out of range"),
    pytest.param("rollout:flags", lambda f: f["aatc"].update(strategy="gradual"), "rollout:flags.aatc", id="an unknown strategy"),
    pytest.param("rollout:monitoring", lambda m: m.update(colour="blue"), "rollout:monitoring.colour: unknown key", id="an unknown key"),
]


@pytest.mark.parametrize("key, change, expected", BROKEN)
@pytest.mark.parametrize("stack", STACKS)
def test_an_invalid_config_stops_the_program_before_any_resource(stack, key, change, expected):
    import pulumi

    config, secret_keys = config_for_mocks(stack)
    value = json.loads(config.get(key, "{}"))
    change(value)
    config[key] = json.dumps(value)
    declared: list = []
    with pytest.raises(pulumi.RunError) as caught:
        run_program(stack, FIXTURE, config=config, secret_keys=secret_keys, record=declared)
    assert declared == [], "nothing may be declared before the config is valid"
    message = str(caught.value)
    assert message.startswith(f"stacks/Pulumi.{stack}.yaml: ")
    assert expected in message
    assert "Traceback" not in message


def test_a_secret_set_in_clear_text_is_refused_by_the_program():
    import pulumi

    config, secret_keys = config_for_mocks("production")
    secret_keys = [k for k in secret_keys if k != "rollout:secrets"]
    with pytest.raises(pulumi.RunError) as caught:
        run_program("production", FIXTURE, config=config, secret_keys=secret_keys)
    assert "rollout:secrets.pagerdutyRoutingKey: must be stored as a secret" in str(caught.value)
