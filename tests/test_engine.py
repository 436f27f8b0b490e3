"""The program and the policy pack under the real engine: `pulumi preview` and `pulumi up`.

Each test works on a scratch copy of the project (tests/engine.py) with the
reference stacks, a local state backend and the pinned engine built by
scripts/install-tools. The dev stack writes its manifests to a folder
(renderYamlToDirectory), so `up` needs no cluster; the Kubernetes provider
renders them. Monitoring is installed by an operator already present
(``monitoring.install: false``): the charts would be fetched from the chart
repository, which these machines cannot reach (a stack can point
``monitoring.charts`` at a mirror instead).
"""

from __future__ import annotations

import time

import pytest
import yaml

from engine import EngineProject, commit_all, engine_project, healthy_evidence, service, stage_history
from rollout.gates.judge import NEXT_STAGE_ONLY, SOAK_SERVED

pytestmark = pytest.mark.engine

SERVICE = "genesis"


def offline_monitoring(config: dict) -> None:
    config["rollout:monitoring"]["install"] = False


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> EngineProject:
    """The project with dev's canary 26 h into its 10 % stage, committed and `up`."""
    project = engine_project(tmp_path_factory.mktemp("engine") / "project")
    now = time.time()

    def change(config: dict) -> None:
        offline_monitoring(config)
        service(config)["rollout"]["history"] = stage_history(now, [0, 5, 10])

    project.edit("dev", change)
    commit_all(project.path, "dev at 10 %")
    project.init("dev")
    deployed = project.up("dev")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return project


def manifests(project: EngineProject) -> list[dict]:
    folder = project.path / "build" / "dev" / "manifests"
    documents = []
    for path in sorted(folder.rglob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def route_weights(project: EngineProject) -> dict[str, int]:
    routes = [d for d in manifests(project) if d["kind"] == "HTTPRoute" and d["metadata"]["name"] == SERVICE]
    assert len(routes) == 1, [d["metadata"]["name"] for d in manifests(project) if d["kind"] == "HTTPRoute"]
    backends = routes[0]["spec"]["rules"][0]["backendRefs"]
    return {b["name"]: b["weight"] for b in backends}


def test_up_of_dev_writes_the_manifests_with_the_provider(dev):
    documents = manifests(dev)
    kinds = {d["kind"] for d in documents}
    assert {"Namespace", "Deployment", "Service", "HTTPRoute", "ConfigMap", "PrometheusRule", "ServiceMonitor",
            "Probe"} <= kinds, kinds
    assert route_weights(dev) == {f"{SERVICE}-stable": 90, f"{SERVICE}-canary": 10}
    # Secrets reach the files only as the provider writes Secrets: never the
    # example values in clear text.
    text = "\n".join(p.read_text() for p in (dev.path / "build" / "dev" / "manifests").rglob("*.yaml"))
    assert "hooks.slack.example" not in text


def route_dependencies(project: EngineProject, stack: str) -> tuple[dict[str, str], list[str]]:
    """The resources of the stack's state by URN type and name, and the route's recorded dependencies."""
    import json

    exported = project.pulumi("stack", "export", "-s", stack)
    assert exported.returncode == 0, exported.stderr
    resources = json.loads(exported.stdout)["deployment"]["resources"]
    urns = {r["urn"].rsplit("::", 1)[-1]: r["urn"] for r in resources if r["urn"].count("::") >= 3}
    (route,) = [r for r in resources if r["urn"].endswith(f"::{SERVICE}-route")]
    return urns, route.get("dependencies") or []


def test_the_state_shows_each_route_after_the_deployments_whose_pods_take_its_traffic(dev):
    """At 10 % both tracks take the route's traffic: the route depends on both Deployments (and
    Services), so the engine applies it only after the provider awaited their pods."""
    urns, dependencies = route_dependencies(dev, "dev")
    for name in (f"{SERVICE}-stable", f"{SERVICE}-canary", f"{SERVICE}-stable-service", f"{SERVICE}-canary-service"):
        assert urns[name] in dependencies, (name, dependencies)


def test_preview_reports_the_packs_verdict_and_a_rollback_is_allowed(dev):
    clean = dev.preview("dev")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Policies:" in clean.stdout and "rollout@v" in clean.stdout, clean.stdout

    rolled = dev.rollout("rollback", "--stack", "dev", "--service", SERVICE, "--reason", "engine test")
    assert rolled.returncode == 0, rolled.stderr
    try:
        allowed = dev.preview("dev", "--policy-pack-config", str(dev.policy_config("dev", "--rollback")))
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert "rollout@v" in allowed.stdout
    finally:
        dev.path.joinpath("stacks", "Pulumi.dev.yaml").write_text(
            _git_show(dev, "HEAD:stacks/Pulumi.dev.yaml"))


def _git_show(project: EngineProject, ref: str) -> str:
    from engine import git

    return git(project.path, "show", ref)


def _refused(project: EngineProject, change, policy: str) -> str:
    before = project.stack_file("dev").read_text()
    project.edit("dev", change)
    try:
        refused = project.preview("dev")
    finally:
        project.stack_file("dev").write_text(before)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert policy in out, out
    assert "mandatory" in out
    return out


def test_a_skipped_stage_is_refused_by_the_pack_as_the_engine_runs_it(dev):
    def skip(config: dict) -> None:
        service(config)["rollout"]["history"].append({"weight": 50, "startedAt": _now()})

    _refused(dev, skip, NEXT_STAGE_ONLY)


def test_an_unserved_soak_is_refused_by_the_pack_as_the_engine_runs_it(dev):
    """The current stage committed ten minutes ago; the next one appended now."""
    before = dev.stack_file("dev").read_text()
    dev.edit("dev", lambda c: service(c)["rollout"]["history"].__setitem__(-1, {"weight": 10, "startedAt": _now(-600)}))
    commit_all(dev.path, "10 % ten minutes ago")
    try:
        _refused(dev, lambda c: service(c)["rollout"]["history"].append({"weight": 25, "startedAt": _now()}),
                 SOAK_SERVED)
    finally:
        dev.stack_file("dev").write_text(before)
        commit_all(dev.path, "back to the soaked stage")


def _now(offset: float = 0) -> str:
    from engine import at

    return at(time.time() + offset)


def test_stack_outputs_feed_evidence_advance_preview_and_a_second_up(dev, tmp_path):
    assert dev.outputs("dev")["rolloutState"]["services"][SERVICE]["weight"] == 10
    evidence = healthy_evidence(dev, "dev", tmp_path)
    advanced = dev.rollout("advance", "--stack", "dev", "--service", SERVICE, "--evidence", str(evidence))
    assert advanced.returncode == 0, advanced.stdout + advanced.stderr
    assert advanced.stdout.startswith(f"{SERVICE}: 10% -> 25% from ")

    previewed = dev.preview("dev", "--policy-pack-config", str(dev.policy_config("dev", "--evidence", str(evidence))))
    assert previewed.returncode == 0, previewed.stdout + previewed.stderr

    second = dev.up("dev", "--policy-pack-config", str(dev.policy_config("dev", "--evidence", str(evidence))))
    assert second.returncode == 0, second.stdout + second.stderr
    assert route_weights(dev) == {f"{SERVICE}-stable": 75, f"{SERVICE}-canary": 25}
    assert dev.outputs("dev")["rolloutState"]["services"][SERVICE]["weight"] == 25
    commit_all(dev.path, "dev at 25 %")


def test_make_up_deploys_the_shipped_dev_stack_and_says_it_used_the_example_passphrase(tmp_path):
    import subprocess

    project = engine_project(tmp_path / "project", shipped_stacks=True)
    env = {k: v for k, v in project.env.items() if k != "PULUMI_CONFIG_PASSPHRASE"}
    done = subprocess.run(["bash", "scripts/up", "dev"], cwd=project.path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using the example passphrase of the shipped dev stack" in done.stdout
    assert "NOTHING WAS DEPLOYED" not in done.stdout
    written = {p.name for p in (project.path / "build" / "dev" / "manifests").rglob("*.yaml")}
    assert any(name.startswith("gateway.networking.k8s.io_v1-httproute-") for name in written), written
    assert project.outputs("dev")["stack"] == "dev"
