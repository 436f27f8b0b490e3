"""The policy pack: each policy as a plain function, and the whole pack over every stack."""

from __future__ import annotations

import ast
import copy
from datetime import datetime, timezone

import pytest

from conftest import FIXTURE, ROOT, STACKS, edit_stack
from policies import rules
from policies.rules import Context, Resource
from rollout.engine.harness import run_program
from rollout.load.stack import load_stack
from rollout.model.state import rollout_state
from rollout.engine.policy_runner import resource_violations, resources_of

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def _violations(name: str, resources: list[Resource], context: Context | None = None) -> list[tuple[str, str]]:
    (policy,) = [p for p in rules.POLICIES if p.name == name]
    return list(policy.check(resources, context or Context(now=NOW)))


def _state(tier: str = "production", weight: int = 10) -> Resource:
    """The rollout-state stash as the program declares it for the reference stack of that tier
    (the pack parses the whole state, and judges the tier against the deployed one), with
    genesis' weight as the case needs."""
    stack = "production" if tier == "production" else "staging"
    state = rollout_state(load_stack(stack, FIXTURE), stack, NOW)
    state["tier"] = tier
    state["services"]["genesis"]["weight"] = weight
    return Resource(rules.STASH, rules.STATE_STASH, {"input": state})


def _deployment(image: str = "ghcr.io/example/genesis:1.4.2", replicas: int = 3, resources=None, track="stable") -> Resource:
    container = {"name": "genesis", "image": image}
    container["resources"] = resources if resources is not None else {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    labels = {"app.kubernetes.io/name": "genesis", "rollout.dev/track": track}
    return Resource(rules.DEPLOYMENT, f"genesis-{track}", {"spec": {"replicas": replicas, "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}})


def _pdb(track="stable") -> Resource:
    return Resource(rules.PDB, f"genesis-{track}-pdb", {"spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "genesis", "rollout.dev/track": track}}}})


def _route(stable: int, canary: int) -> Resource:
    return Resource(rules.HTTPROUTE, "genesis-route", {"metadata": {"name": "genesis"}, "spec": {"rules": [{"backendRefs": [
        {"name": "genesis-stable", "weight": stable}, {"name": "genesis-canary", "weight": canary}]}]}})


PLAIN = [
    pytest.param("rollout-pinned-images", [_deployment(image="ghcr.io/example/genesis:latest")], "is not pinned", id="an image on latest is refused"),
    pytest.param("rollout-pinned-images", [_deployment(image="ghcr.io/example/genesis")], "is not pinned", id="an image without a tag is refused"),
    pytest.param("rollout-requests-and-limits", [_deployment(resources={"requests": {"cpu": "1", "memory": "1Gi"}})], "has no limits for cpu, memory", id="a container without limits is refused"),
    pytest.param("rollout-production-replicas", [_state(), _deployment(replicas=1), _pdb()], "production needs at least 2", id="one replica in production is refused"),
    pytest.param("rollout-production-replicas", [_state(), _deployment()], "no PodDisruptionBudget", id="production without a PDB is refused"),
    pytest.param("rollout-route-weights", [_state(weight=10), _route(80, 10)], "sum to 90, not 100", id="route weights summing to 90 are refused"),
    pytest.param("rollout-route-weights", [_state(weight=10), _route(75, 25)], "the canary's weight is 25, but the rollout is at 10 %", id="a route out of step with the rollout is refused"),
]


@pytest.mark.parametrize("policy, resources, expected", PLAIN)
def test_a_policy_catches_the_fault_it_is_meant_for(policy, resources, expected):
    found = _violations(policy, resources)
    assert any(expected in message for _, message in found), found


CLEAN = [
    pytest.param("rollout-pinned-images", [_deployment(image="ghcr.io/example/genesis@sha256:" + "a" * 64)], id="a digest is pinned"),
    pytest.param("rollout-production-replicas", [_state(tier="staging"), _deployment(replicas=1)], id="one replica outside production is fine"),
    pytest.param("rollout-production-replicas", [_state(), _deployment(), _pdb()], id="production with 3 replicas and a PDB passes"),
    pytest.param("rollout-route-weights", [_state(weight=10), _route(90, 10)], id="weights 90/10 at stage 10 pass"),
]


@pytest.mark.parametrize("policy, resources", CLEAN)
def test_a_policy_passes_what_is_right(policy, resources):
    assert _violations(policy, resources) == []


def test_the_route_matcher_follows_continue_to_pagerduty():
    route = {"receiver": "default", "routes": [
        {"receiver": "hook", "matchers": ['rollback="true"'], "continue": True},
        {"receiver": "pagerduty", "matchers": ['priority=~"P0|P1"']},
    ]}
    assert rules.receivers_for(route, {"priority": "P1", "rollback": "true"}) == ["hook", "pagerduty"]
    assert rules.receivers_for(route, {"priority": "P3"}) == ["default"]


@pytest.fixture(scope="module")
def runs():
    return {stack: run_program(stack, FIXTURE) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_the_whole_pack_is_clean_on_every_shipped_stack(runs, stack):
    assert resource_violations(runs[stack], NOW) == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_resource_policies_of_one_run_resolve_the_deployed_state_once(runs, stack, monkeypatch):
    # As in the pack: the policies that judge by the deployed tier share one transition,
    # instead of each reading the stack at the git base again.
    from policies import transition

    built = []
    real = transition.gate_transition
    monkeypatch.setattr(transition, "gate_transition", lambda state, context: built.append(1) or real(state, context))
    resource_violations(runs[stack], NOW)
    assert len(built) <= 1


def _altered(run, type_, change):
    resources = resources_of(run)
    out = []
    for resource in resources:
        if resource.type == type_:
            props = copy.deepcopy(dict(resource.props))
            change(props)
            resource = Resource(resource.type, resource.name, props, resource.urn)
        out.append(resource)
    return out


def test_a_route_whose_weights_sum_to_90_is_caught_in_a_declared_stack(runs):
    def ninety(props):
        props["spec"]["rules"][0]["backendRefs"][0]["weight"] -= 10

    found = _violations("rollout-route-weights", _altered(runs["production"], rules.HTTPROUTE, ninety))
    assert found and "sum to 90" in found[0][1]


def test_a_rule_without_a_runbook_is_caught_in_a_declared_stack(runs):
    def drop_runbook(props):
        for group in props["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["annotations"].pop("runbook_url")

    resources = _altered(runs["staging"], rules.RULE, drop_runbook)
    found = _violations("rollout-alert-rules-complete", resources)
    assert found and all("has no runbook_url" in message for _, message in found)


def test_an_unpinned_image_is_a_mandatory_violation_in_production(project):
    edit_stack(project, "production", lambda c: c["rollout:services"][0]["canary"].update(image="ghcr.io/example/genesis:latest"))
    run = run_program("production", project)
    found = [v for v in resource_violations(run, NOW) if v.policy == "rollout-pinned-images"]
    assert found and all(v.mandatory for v in found)


def test_the_same_fault_is_advisory_outside_production(project):
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["canary"].update(image="ghcr.io/example/genesis"))
    run = run_program("staging", project)
    found = [v for v in resource_violations(run, NOW) if v.policy == "rollout-pinned-images"]
    assert found and not any(v.mandatory for v in found)


def test_a_secret_in_a_plain_input_is_caught(runs):
    run = runs["production"]
    resources = resources_of(run)
    leaked = [Resource(r.type, r.name, {**r.props, "note": run.secret_values[0]}, r.urn) if r.type == rules.CONFIGMAP else r for r in resources]
    context = Context(now=NOW, secret_values=tuple(run.secret_values))
    found = _violations("rollout-no-clear-secrets", leaked, context)
    assert found and "value of a stack secret" in found[0][1]


def test_production_without_pagerduty_is_caught(runs):
    def no_pager(props):
        if props["chart"] != "kube-prometheus-stack":
            return
        config = props["values"]["alertmanager"]["config"]
        config["receivers"] = [r for r in config["receivers"] if r["name"] != "pagerduty"]
        for route in config["route"]["routes"]:
            if route["receiver"] == "pagerduty":
                route["receiver"] = "slack-warnings"

    found = _violations("rollout-pages-reach-pagerduty", _altered(runs["production"], rules.CHART, no_pager))
    assert {m.split(" ")[0] for _, m in found} == {"P0", "P1"}


def test_the_pack_entry_point_builds_exactly_the_policies_of_the_module():
    # Constructing the PolicyPack starts its gRPC server, so the entry point is
    # read, not run: it must build the pack from policies.pack and nothing else.
    tree = ast.parse((ROOT / "policies" / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"]
    assert len(calls) == 1
    (policies_arg,) = [k.value for k in calls[0].keywords if k.arg == "policies"]
    assert isinstance(policies_arg, ast.Call) and policies_arg.func.id == "crossguard_policies"
    from policies.pack import crossguard_policies

    names = [p.name for p in crossguard_policies()]
    assert names == [p.name for p in rules.POLICIES]
    assert len(set(names)) == len(names)
    assert all(name.startswith("rollout-") and name == name.lower() for name in names)


def test_a_credential_input_the_program_did_not_mark_secret_is_caught(runs):
    run = runs["production"]
    (chart,) = [r for r in resources_of(run) if r.type == rules.CHART and r.props.get("chart") == "kube-prometheus-stack"]
    assert "values.alertmanager.config" in rules.credential_inputs(chart)
    marked = {r.urn: set(r.secret_paths) for r in run.resources}
    marked[chart.urn].discard("values.alertmanager.config")
    context = Context(now=NOW, secret_values=tuple(run.secret_values), secret_paths=marked)
    found = _violations("rollout-no-clear-secrets", resources_of(run), context)
    assert (chart.name, "input values.alertmanager.config carries credentials but is not passed as a secret") in found


def test_crossguard_numbers_and_proxies_read_as_the_program_wrote_them():
    from pulumi_policy.proxy import unknown_checking_proxy

    wired = unknown_checking_proxy({"input": {"services": {"genesis": {"weight": 10.0, "stages": [{"weight": 5.0}]}}}})
    state = rules.rollout_state([Resource(rules.STASH, rules.STATE_STASH, wired)])
    assert state == {"services": {"genesis": {"weight": 10, "stages": [{"weight": 5}]}}}
    assert isinstance(state["services"]["genesis"]["weight"], int)


def _check(project, stack):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "check", "--stack", stack],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_rollout_check_refuses_an_unpinned_production_image_and_names_the_policy(project):
    edit_stack(project, "production", lambda c: c["rollout:services"][0]["canary"].update(image="ghcr.io/example/genesis:latest"))
    result = _check(project, "production")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[mandatory] rollout-pinned-images (genesis-canary): image 'ghcr.io/example/genesis:latest' is not pinned" in result.stdout


def test_rollout_check_reports_the_same_fault_in_staging_but_passes(project):
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["canary"].update(image="ghcr.io/example/genesis:latest"))
    result = _check(project, "staging")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[advisory] rollout-pinned-images (genesis-canary)" in result.stdout


def test_a_canary_flag_out_of_step_with_the_route_is_caught_in_a_declared_stack(runs):
    import json

    def stale(props):
        if "flags.json" not in (props.get("data") or {}):
            return  # the dashboards' ConfigMaps
        document = json.loads(props["data"]["flags.json"])
        document["flags"]["aatc"]["metadata"]["weight"] = 10
        props["data"]["flags.json"] = json.dumps(document)

    assert _violations("rollout-canary-flags-in-step", resources_of(runs["dev"])) == []
    found = _violations("rollout-canary-flags-in-step", _altered(runs["dev"], rules.CONFIGMAP, stale))
    assert found == [("flag aatc", "follows weight 10, but genesis's rollout is at 25 %")]


def test_production_prometheus_without_a_retained_volume_is_caught(runs):
    def ephemeral(props):
        if props["chart"] == "kube-prometheus-stack":
            props["values"]["prometheus"]["prometheusSpec"].pop("storageSpec")
            props["values"]["prometheus"]["prometheusSpec"].pop("persistentVolumeClaimRetentionPolicy", None)

    found = _violations("rollout-prometheus-storage-protected", _altered(runs["production"], rules.CHART, ephemeral))
    assert {message for _, message in found} == {
        "Prometheus has no persistent volume",
        "Prometheus' volume is not retained when its StatefulSet is deleted",
    }


def test_the_credential_check_reads_past_values_a_preview_does_not_know_yet():
    from pulumi_policy.proxy import unknown_checking_proxy
    from pulumi.runtime.rpc import UNKNOWN

    props = unknown_checking_proxy({
        "metadata": {"namespace": UNKNOWN},
        "env": [UNKNOWN, {"name": "HOOK", "value": "https://hooks.slack.com/services/T0/B0/abcdefabcdef"}],
    })
    found = _violations("rollout-no-clear-secrets", [Resource("kubernetes:core/v1:ConfigMap", "leaky", props)])
    assert found == [("leaky", "holds what looks like a credential in clear text")]
