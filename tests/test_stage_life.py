"""A stage's life, end to end, on stack files each test builds: one service at a time, a
completed release done, the soak as measured, one command per step, a rehearsal that reads
every stack at --now, hardened pods and the production policies, and the smaller defects
(stage annotations, a weight off the plan, flags --at, managedFields, the docs cited)."""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from alerts.recording import stage_index
from conftest import ROOT, edit_stack
from dashboards.build import stage_annotations
from policies import production as hardening
from policies import rules
from policies.rules import Context, Resource
from policies.staged import staged_config
from rollout.build import traffic
from rollout.build.kubernetes_objects import monitoring_documents
from rollout.load.stack import load_stack
from rollout.model.plans import STANDARD_WEIGHTS
from rollout.model.time import format_time, parse_time, utc_now
from rollout.ops.evidence import SHARE_LAG_SECONDS, onset
from rollout.ops.fastpath import live_routes
from evidence_counts import counts, with_bounds
from servers import FlakyServer
from test_evidence_faults import HEALTHY as HEALTHY_ANSWERS, _measure
from test_cli_rollout import commit_all, rollout, stack_text

OLD, R, NEW = (f"ghcr.io/example/genesis:{v}" for v in ("1.4.2", "1.5.0", "1.6.0"))
DAY = timedelta(days=1)


def iso(value: datetime) -> str:
    return format_time(value)


def services(config: dict) -> list[dict]:
    return config["rollout:services"]


def set_rollout(project: Path, stack: str, history, canary=R, stable=OLD, plan="safe", names=("genesis",)) -> None:
    """Each named service (a copy of genesis) with these images and this history ((weight, time) pairs)."""

    def change(config):
        genesis = services(config)[0]
        genesis["canary"]["image"], genesis["stable"]["image"] = canary, stable
        genesis["rollout"]["plan"] = plan
        genesis["rollout"]["history"] = [{"weight": w, "startedAt": iso(t), "release": canary} for w, t in history]
        copies = []
        for index, name in enumerate(names):
            copy = json.loads(json.dumps(genesis))
            copy["name"] = name
            # Each service serves its own path: a route is a service's identity.
            copy.setdefault("route", {})["matches"] = [{"path": {"type": "PathPrefix", "value": f"/{name}"}}]
            copies.append(copy)
        config["rollout:services"] = copies

    edit_stack(project, stack, change)


def evidence_for(project: Path, stack: str, records: dict[str, dict | None], at: datetime | None = None) -> dict:
    """Evidence over the deployed (HEAD) stage of each service: healthy measures, or none (no data)."""
    from rollout.gates.check import state_at_ref

    deployed = state_at_ref(stack, project, "HEAD")
    found = {}
    for name, measures in records.items():
        service = deployed["services"][name]
        queries = ({m: with_bounds(m, {"status": "ok", "value": v}) for m, v in measures.items()}
                   if measures is not None else
                   {m: {"status": "empty", "value": None, "detail": "no series matched"}
                    for m in ("errorRatio", "latencyP95Seconds", "latencyP99Seconds", "requests")}
                   | {"consecutiveFailedHealthChecks": {"status": "empty", "value": None}})
        found[name] = {"stageWeight": service["weight"], "stageStartedAt": service["stageStartedAt"],
                       "release": service["release"],
                       "trafficSince": service["stageStartedAt"] if measures is not None else None,
                       "windowSeconds": 3600, "queries": queries}
    return {"kind": "rollout-gate-evidence", "version": 1, "stack": stack,
            "collectedAt": iso(at or utc_now()), "deployedState": deployed, "upstreamState": None, "services": found}


GOOD = {"errorRatio": 0.001, "latencyP95Seconds": 0.2, "latencyP99Seconds": 0.4,
        "consecutiveFailedHealthChecks": 0, "requests": 50_000, **counts(50_000, errors=0.001)}


def write(tmp_path: Path, name: str, document: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


# --- one service at a time --------------------------------------------------------------


def test_two_services_one_advances_while_the_other_has_no_data_and_a_rollback_leaves_the_other(project, tmp_path):
    now = utc_now()
    set_rollout(project, "staging", [(0, now - 3 * DAY), (5, now - DAY - timedelta(hours=1))],
                names=("genesis", "exodus"))
    commit_all(project)
    evidence = write(tmp_path, "evidence.json", evidence_for(project, "staging", {"genesis": GOOD, "exodus": None}))

    # Without --service or --all-services, a stack of two services moves not at all.
    for command in (["advance", "--evidence", evidence], ["rollback", "--reason", "x"],
                    ["promote"], ["release", "--image", NEW]):
        refused = rollout(project, command[0], "--stack", "staging", *command[1:])
        assert refused.returncode == 2, refused.stderr
        assert "this stack has 2 services (genesis, exodus): name one with --service, or pass --all-services" \
            in refused.stderr
    before = stack_text(project, "staging")
    # exodus alone is refused for its missing data, and the file is unchanged.
    alone = rollout(project, "advance", "--stack", "staging", "--service", "exodus", "--evidence", evidence)
    assert alone.returncode == 1 and "rollout-canary-within-budget (service exodus)" in alone.stderr
    assert stack_text(project, "staging") == before
    # --all-services: genesis advances, exodus is reported and holds nothing up.
    both = rollout(project, "advance", "--stack", "staging", "--all-services", "--evidence", evidence)
    assert both.returncode == 0, both.stderr
    assert both.stdout.splitlines() == [f"genesis: 5% -> 10% from {both.stdout.split(' from ')[1].strip()}"]
    assert "exodus: not advanced:" in both.stderr and "(service exodus)" in both.stderr
    config = load_stack("staging", project)
    assert [(s.name, s.rollout.weight) for s in config.services] == [("genesis", 10), ("exodus", 5)]

    # A rollback of exodus leaves genesis's rollout where it is.
    rolled = rollout(project, "rollback", "--stack", "staging", "--service", "exodus", "--reason", "incident")
    assert rolled.returncode == 0, rolled.stderr
    config = load_stack("staging", project)
    assert [(s.name, s.rollout.weight) for s in config.services] == [("genesis", 10), ("exodus", 0)]
    assert [e.weight for e in config.service("genesis").rollout.history] == [0, 5, 10]
    # --all-services rolls back every one.
    assert rollout(project, "rollback", "--stack", "staging", "--all-services", "--reason", "all").returncode == 0
    assert [s.rollout.weight for s in load_stack("staging", project).services] == [0, 0]


# --- a completed release is done --------------------------------------------------------


def test_after_a_promote_nothing_proposes_the_release_again_and_the_canary_idles(project, tmp_path):
    now = utc_now()
    weights = [0, 5, 10, 25, 50, 75, 100]
    history = [(w, now - (10 - i) * DAY) for i, w in enumerate(weights[:-1])] + [(100, now - 2 * DAY - timedelta(hours=1))]
    set_rollout(project, "staging", history)
    commit_all(project)
    # Over budget over the 100 % stage: the promote is refused, like an advance.
    bad = write(tmp_path, "bad.json", evidence_for(project, "staging", {
        "genesis": {**GOOD, "errorRatio": 0.2, **counts(50_000, errors=0.2)}}))
    refused = rollout(project, "promote", "--stack", "staging", "--evidence", bad)
    assert refused.returncode == 1, refused.stderr
    assert "rollout-canary-within-budget (service genesis): error ratio: canary 20 %" in refused.stderr
    good = write(tmp_path, "good.json", evidence_for(project, "staging", {"genesis": GOOD}))
    promoted = rollout(project, "promote", "--stack", "staging", "--evidence", good)
    assert promoted.returncode == 0, promoted.stderr
    assert "with no pods until the next release" in promoted.stdout

    status = json.loads(rollout(project, "status", "--stack", "staging", "--format", "json").stdout)
    row = status["services"]["genesis"]
    assert row["mayAdvance"] is False and row["promoted"] is True and row["nextWeight"] is None
    text = rollout(project, "status", "--stack", "staging").stdout
    assert f"release {R} is promoted (the stable track runs it): nothing to advance" in text
    advance = rollout(project, "advance", "--stack", "staging")
    assert advance.returncode == 1
    assert f"genesis: release {R} is promoted (the stable track runs it): nothing to advance" in advance.stderr
    again = rollout(project, "promote", "--stack", "staging")
    assert again.returncode == 1 and "nothing to promote" in again.stderr

    # The canary runs no pods and no probe checks it; production's replica policy lets it idle.
    config = load_stack("staging", project)
    service = config.services[0]
    assert service.canary_idle and traffic.deployment(config, service, "canary")["spec"]["replicas"] == 0
    probes = [d for d in monitoring_documents(config, {}) if d["kind"] == "Probe"]
    assert [p["metadata"]["name"] for p in probes] == ["genesis-stable"] or all("canary" not in json.dumps(p) for p in probes)
    # A new release brings the canary back.
    assert rollout(project, "release", "--stack", "staging", "--image", NEW).returncode == 0
    config = load_stack("staging", project)
    assert traffic.deployment(config, config.services[0], "canary")["spec"]["replicas"] >= 1


# --- the soak as measured ---------------------------------------------------------------


def test_traffic_since_takes_the_shares_lag_off_and_never_precedes_the_stage():
    started = datetime(2031, 3, 3, 9, tzinfo=timezone.utc)
    day = 86400
    # Deployed as recorded: Prometheus sees the share 4.5 to 6 minutes later; it counts from the record.
    for lag in (270, 300, 330, SHARE_LAG_SECONDS):
        assert onset(iso(started + timedelta(seconds=lag)), 10, started, day) == iso(started)
    # Deployed an hour late: the soak counts from the deploy (the sight less the lag).
    seen = started + timedelta(hours=1, minutes=5)
    assert onset(iso(seen), 10, started, day) == iso(seen - timedelta(seconds=SHARE_LAG_SECONDS))
    # At 0 % the first probe sample is the traffic.
    assert onset(iso(started + timedelta(minutes=1)), 0, started, day) == iso(started + timedelta(minutes=1))
    assert onset(None, 10, started, day) is None


# --- one command per step ---------------------------------------------------------------


def _prometheus(shares: dict[str, bool]):
    """A query API answering healthy measures for the services in ``shares`` that have data,
    empty results for the others; the share series at the stage's weight from its start."""

    def answer(method, path, body):
        query = urllib.parse.parse_qs(body.decode())
        promql, at = query["query"][0], float(query["time"][0])
        service = re.search(r'service="([^"]+)"', promql).group(1)
        if not shares.get(service):
            return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        if "[" in promql and ":" in promql.rsplit("[", 1)[1]:  # the share subquery
            window = int(re.search(r"\[(\d+)s:", promql).group(1))
            values = [[at - window + 60 * i, "0.05"] for i in range(6, window // 60)]
            data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
        elif _measure(promql) == "consecutiveFailedHealthChecks":
            values = [[at - 600 + 15 * i, "1"] for i in range(40)]
            data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
        else:
            value = repr(HEALTHY_ANSWERS[_measure(promql)])
            data = {"resultType": "vector", "result": [{"metric": {}, "value": [at, value]}]}
        return 200, json.dumps({"status": "success", "data": data}).encode()

    return answer


def test_rollout_stage_gathers_evidence_advances_and_writes_the_packs_config(project):
    now = utc_now()
    set_rollout(project, "staging", [(0, now - 3 * DAY), (5, now - DAY - timedelta(hours=1))],
                names=("genesis", "exodus"))
    commit_all(project)
    with FlakyServer([], _prometheus({"genesis": True, "exodus": False})) as api:
        staged = rollout(project, "stage", "--stack", "staging", "--all-services", "--prometheus", api.url)
        missing = rollout(project, "stage", "--stack", "staging", "--service", "genesis")
    assert staged.returncode == 0, staged.stderr
    assert staged.stdout.startswith("genesis: 5% -> 10% from ")
    assert "exodus: not advanced:" in staged.stderr
    evidence = json.loads((project / "build" / "staging-evidence.json").read_text())
    record = evidence["services"]["genesis"]
    assert record["trafficSince"] == record["stageStartedAt"]  # seen within the share's lag of the record
    config = json.loads((project / "build" / "policy-config-staging.json").read_text())
    assert config["rollout-canary-within-budget"]["evidence"]["collectedAt"] == evidence["collectedAt"]
    assert missing.returncode == 2 and "$PROMETHEUS_URL_STAGING is not set" in missing.stderr
    # A plain `pulumi preview --policy-pack policies` reads the staged config while it is current ...
    staged_gates = staged_config(project, "staging")
    assert staged_gates is not None and staged_gates["evidence"]["stack"] == "staging"
    # ... and not once the stack file changed after it.
    path = project / "stacks" / "Pulumi.staging.yaml"
    later = (project / "build" / "policy-config-staging.json").stat().st_mtime + 5
    import os

    os.utime(path, (later, later))
    assert staged_config(project, "staging") is None


def test_the_pack_without_its_config_says_how_to_stage_it(project, monkeypatch):
    now = utc_now()
    set_rollout(project, "staging", [(0, now - 3 * DAY), (5, now - DAY - timedelta(hours=1))])
    commit_all(project)
    set_rollout(project, "staging", [(0, now - 3 * DAY), (5, now - DAY - timedelta(hours=1)), (10, now)])
    monkeypatch.setenv("ROLLOUT_PROJECT_DIR", str(project))
    state = rollout_state_resource(project, "staging")
    (policy,) = [p for p in rules.POLICIES if p.name == "rollout-canary-within-budget"]
    found = list(policy.check([state], Context(now=now + timedelta(minutes=1))))
    assert found and "no gate evidence" in found[0][1]
    assert "`rollout stage --stack S --service N`" in found[0][1] and "`make preview STACK=S`" in found[0][1]


def rollout_state_resource(project: Path, stack: str) -> Resource:
    from rollout.model.state import rollout_state

    return Resource(rules.STASH, rules.STATE_STASH, {"input": rollout_state(load_stack(stack, project), stack)})


def test_make_has_preview_and_up_for_a_stack_and_scripts_up_uses_the_staged_config():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^preview: deps\n\t@scripts/up --preview \$\(STACK\)$", makefile, re.M)
    assert re.search(r"^up: deps\n\t@scripts/up \$\(STACK\)$", makefile, re.M)
    up = (ROOT / "scripts" / "up").read_text()
    assert 'config="build/policy-config-$stack.json"' in up and '[ "$config" -nt "stacks/Pulumi.$stack.yaml" ]' in up
    assert 'pulumi preview --stack "$stack" --policy-pack policies --policy-pack-config "$config"' in up


# --- a rehearsal reads every stack at --now ---------------------------------------------


def test_a_rehearsal_of_production_reads_staging_as_it_stood_then(project):
    t0 = utc_now().replace(minute=0, second=0) - 10 * DAY
    set_rollout(project, "staging", [(0, t0), (5, t0 + DAY), (10, t0 + 2 * DAY), (25, t0 + 3 * DAY)])
    set_rollout(project, "production", [(0, t0)])
    # A day and an hour in, staging had entered 5 % an hour before: production's 5 % waits for it.
    at = t0 + DAY + timedelta(hours=1)
    status = json.loads(rollout(project, "status", "--stack", "production", "--format", "json", "--now", iso(at)).stdout)
    row = status["services"]["genesis"]
    assert row["mayAdvance"] is False and [w["kind"] for w in row["waits"]] == ["upstream", "evidence"]
    assert row["upstream"] == f"staging completed 0% with {R} (at 5%)"
    dry = rollout(project, "advance", "--stack", "production", "--dry-run", "--now", iso(at))
    assert dry.returncode == 1 and "rollout-staging-first" in dry.stderr and "staging entered 5%" in dry.stderr
    # The plan shows staging's completion of 5 % as it was projected then, not its later history.
    plan = json.loads(rollout(project, "plan", "--stack", "production", "--format", "json", "--now", iso(at)).stdout)
    upstream = {s["weight"]: s for s in plan["services"]["genesis"]["upstream"]["stages"]}
    assert upstream[5]["status"] == "current" and upstream[10]["status"] == "planned"
    assert plan["services"]["genesis"]["stages"][1]["earliestStart"] == iso(t0 + 2 * DAY)
    # At the real end of the history, production's 5 % is allowed by staging.
    later = json.loads(rollout(project, "status", "--stack", "production", "--format", "json",
                               "--now", iso(t0 + 3 * DAY + timedelta(hours=1))).stdout)
    assert later["services"]["genesis"]["mayAdvance"] is True


# --- hardened pods and the production policies -------------------------------------------


def test_a_stage_scales_the_canary_without_changing_its_pod_template(project):
    """The canary's replicas follow its weight; its pod template (what a rollout replaces pods for)
    is the same at every stage, so a stage adds or removes pods and never replaces the running ones."""
    now = utc_now()

    def at(weights):
        def change(config):
            service = config["rollout:services"][0]
            service["stable"]["replicas"], service["canary"]["replicas"] = 4, 1  # the canary goes from one pod to four
            service["rollout"]["history"] = [
                {"weight": w, "startedAt": format_time(now - timedelta(days=len(weights) - i))}
                for i, w in enumerate(weights)]
        return change

    plan = STANDARD_WEIGHTS
    replicas, templates = set(), []
    for end in range(1, len(plan) + 1):
        edit_stack(project, "production", at(plan[:end]))
        config = load_stack("production", project)
        canary = traffic.deployment(config, config.services[0], "canary")
        replicas.add(canary["spec"]["replicas"])
        templates.append(canary["spec"]["template"])
    assert len(replicas) > 2 and min(replicas) == 1
    assert all(template == templates[0] for template in templates)


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_every_service_pod_is_restricted_and_spread(project, stack):
    config = load_stack(stack, project)
    for service in config.services:
        for name, manifest in traffic.manifests(config, service).items():
            if manifest["kind"] != "Deployment":
                continue
            kubernetes_validate.validate(manifest, "1.33", strict=True)
            pod = manifest["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in pod["containers"]:
                own = container["securityContext"]
                assert own["allowPrivilegeEscalation"] is False and own["readOnlyRootFilesystem"] is True
                assert own["capabilities"] == {"drop": ["ALL"]}
            keys = [c["topologyKey"] for c in pod.get("topologySpreadConstraints", [])]
            assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"], name
            assert hardening.pod_problems(manifest["spec"]) == []


def _stash(tier: str = "production", plan: str = "safe") -> Resource:
    return Resource(rules.STASH, rules.STATE_STASH, {"input": {"stack": "production", "tier": tier, "services": {
        "genesis": {"weight": 0, "plan": plan, "stageStartedAt": "2031-03-03T09:00:00Z"}}}})


def _deploy(spec: dict, annotations: dict | None = None) -> Resource:
    return Resource(rules.DEPLOYMENT, "genesis-stable", {"metadata": {"annotations": annotations or {}}, "spec": spec})


def _context() -> Context:
    return Context(now=datetime(2031, 3, 3, 9, tzinfo=timezone.utc), deployed_tier="production")


def _check(name: str, resources: list[Resource], context: Context | None = None) -> list[tuple[str, str]]:
    (policy,) = [p for p in rules.POLICIES if p.name == name]
    return list(policy.check(resources, context or _context()))


def test_production_refuses_the_instant_plan_skip_await_and_soft_pods(project):
    config = load_stack("production", project)
    service = config.services[0]
    hardened = traffic.deployment(config, service, "stable")["spec"]
    assert _check("rollout-production-pace", [_stash(plan="instant")]) == [
        ("service genesis", "plan instant goes 0 -> 100% after a minute's soak; a production stack rolls out under "
                            "safe or fast")]
    assert _check("rollout-production-pace", [_stash(plan="safe")]) == []
    skipping = _check("rollout-await-readiness", [_stash(), _deploy(hardened, {"pulumi.com/skipAwait": "true"})])
    assert skipping and "skips the provider's readiness await" in skipping[0][1]
    assert _check("rollout-await-readiness", [_stash(), _deploy(hardened)]) == []
    soft = json.loads(json.dumps(hardened))
    del soft["template"]["spec"]["securityContext"]
    soft["template"]["spec"]["containers"][0].pop("securityContext")
    soft["template"]["spec"].pop("topologySpreadConstraints")
    problems = [message for _, message in _check("rollout-pod-security", [_stash(), _deploy(soft)])]
    assert "the pod has no seccompProfile RuntimeDefault" in problems
    assert f"container 'genesis' may run as root (runAsNonRoot is not true)" in problems
    assert "3 replicas are not spread across topology.kubernetes.io/zone, kubernetes.io/hostname" in problems
    assert _check("rollout-pod-security", [_stash(), _deploy(hardened)]) == []
    # Outside production none of them reports.
    staging = Context(now=_context().now, deployed_tier="staging")
    for name, resources in (("rollout-production-pace", [_stash("staging", "instant")]),
                            ("rollout-pod-security", [_stash("staging"), _deploy(soft)])):
        assert _check(name, resources, staging) == []
    # Missing limits: refused (mandatory in production) by rollout-requests-and-limits.
    limitless = json.loads(json.dumps(hardened))
    limitless["template"]["spec"]["containers"][0]["resources"].pop("limits")
    assert _check("rollout-requests-and-limits", [_stash(), _deploy(limitless)])
    assert rules.Policy.mandatory(next(p for p in rules.POLICIES if p.name == "rollout-requests-and-limits"),
                                  "production")


def test_production_switched_to_instant_at_5_percent_is_refused_naming_the_policy_not_a_crash(project):
    edit_stack(project, "production", lambda c: services(c)[0]["rollout"].update(plan="instant"))
    checked = rollout(project, "check", "--stack", "production")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "[mandatory] rollout-production-pace" in checked.stdout
    assert "Traceback" not in checked.stderr and "tuple.index" not in checked.stdout + checked.stderr
    status = rollout(project, "status", "--stack", "production")
    assert status.returncode == 0, status.stderr
    assert "genesis: 5% (not one of the 2 stages, plan instant)" in status.stdout
    assert "None" not in status.stdout
    assert stage_index((0, 100), 5) == 0 and stage_index((0, 5, 100), 5) == 2


# --- the smaller defects ----------------------------------------------------------------


def test_stage_annotations_say_release_promote_advance_and_rollback(project):
    t0 = utc_now().replace(minute=0, second=0) - 10 * DAY

    def change(config):
        genesis = services(config)[0]
        genesis["stable"]["image"], genesis["stable"]["previousImage"] = R, OLD
        genesis["canary"]["image"] = NEW
        genesis["rollout"]["plan"] = "safe"
        genesis["rollout"]["history"] = [
            {"weight": 0, "startedAt": iso(t0), "release": R},
            {"weight": 5, "startedAt": iso(t0 + DAY), "release": R},
            {"weight": 0, "startedAt": iso(t0 + DAY + timedelta(hours=1)), "release": R, "reason": "incident"},
            {"weight": 5, "startedAt": iso(t0 + 2 * DAY), "release": R},
            {"weight": 100, "startedAt": iso(t0 + 3 * DAY), "release": R},
            {"weight": 0, "startedAt": iso(t0 + 6 * DAY), "release": R, "reason": f"promoted {R} to stable"},
            {"weight": 0, "startedAt": iso(t0 + 7 * DAY), "release": NEW, "reason": "1.6.0"},
        ]

    edit_stack(project, "staging", change)
    texts = [a.text for a in stage_annotations(load_stack("staging", project))]
    assert texts == [
        "genesis: starts at 0%",
        "genesis: 0% -> 5% (advance)",
        "genesis: 5% -> 0% (rollback): incident",
        "genesis: 0% -> 5% (advance)",
        "genesis: 5% -> 100% (advance)",
        f"genesis: {R} promoted to stable; canary 100% -> 0%: promoted {R} to stable",
        f"genesis: release {NEW} starts at 0% (was {R} at 0%): 1.6.0",
    ]


def test_flags_at_prints_each_progressive_and_percentage_flags_share(project):
    start = datetime(2031, 3, 3, tzinfo=timezone.utc)

    def change(config):
        config["rollout:flags"]["rehearsed"] = {"strategy": "progressive", "start": iso(start), "steps": [
            {"after": "0s", "percentage": 10}, {"after": "2d", "percentage": 50}]}
        config["rollout:flags"]["split"] = {"strategy": "percentage", "percentage": 30}

    edit_stack(project, "staging", change)
    at = {when: rollout(project, "flags", "--stack", "staging", "--at", iso(start + when)).stdout.splitlines()
          for when in (-DAY, DAY, 3 * DAY)}
    assert "FLAG_REHEARSED_PERCENT=0" in at[-DAY] and "FLAG_REHEARSED_PERCENT=10" in at[DAY]
    assert "FLAG_REHEARSED_PERCENT=50" in at[3 * DAY] and "FLAG_SPLIT_PERCENT=30" in at[DAY]
    # The boolean line of each flag stays, the share on the line after it.
    lines = at[DAY]
    assert lines[lines.index("FLAG_REHEARSED_PERCENT=10") - 1].startswith("FLAG_REHEARSED=")


def _route(weight: int, managed: list | None) -> dict:
    metadata = {"name": "genesis"}
    if managed is not None:
        metadata["managedFields"] = managed
    return {"kind": "HTTPRoute", "metadata": metadata, "spec": {"rules": [{"backendRefs": [
        {"name": "genesis-stable", "weight": 100 - weight}, {"name": "genesis-canary", "weight": weight}]}]}}


def test_a_live_route_without_managed_fields_is_not_blamed_on_an_edit_in_the_cluster(project, tmp_path):
    hidden = live_routes(_route(0, None), ["genesis"])["genesis"]
    assert hidden == {"canaryWeight": 0, "setByRelay": False, "managedFields": False}
    relay = live_routes(_route(0, [{"manager": "rollout-relay"}]), ["genesis"])["genesis"]
    assert relay["setByRelay"] is True and relay["managedFields"] is True
    now = utc_now()
    set_rollout(project, "staging", [(0, now - 3 * DAY), (5, now - DAY - timedelta(hours=1))])
    commit_all(project)
    messages = {}
    for name, live in (("hidden", hidden), ("relay", relay),
                       ("kubectl", live_routes(_route(0, [{"manager": "kubectl"}]), ["genesis"])["genesis"])):
        evidence = evidence_for(project, "staging", {"genesis": GOOD})
        evidence["services"]["genesis"]["liveRoute"] = live
        result = rollout(project, "advance", "--stack", "staging", "--evidence", write(tmp_path, f"{name}.json", evidence),
                         "--dry-run")
        assert result.returncode == 1
        messages[name] = next(line for line in result.stderr.splitlines() if "rollout-live-route-respected" in line)
    assert "whose writer is not known" in messages["hidden"] and "--show-managed-fields" in messages["hidden"]
    assert "an edit in the cluster" not in messages["hidden"]
    assert "the relay's fast path took the canary out" in messages["relay"]
    assert "an edit in the cluster (not the relay's field manager)" in messages["kubectl"]
    for document in ("README.md", "docs/operations.md"):
        assert "kubectl get httproutes -n NAMESPACE -o json --show-managed-fields" in (ROOT / document).read_text() \
            or "-o json --show-managed-fields" in (ROOT / document).read_text()


DOC_REFERENCE = re.compile(r"\bdocs/[A-Za-z0-9_./-]+\.md\b")


def test_every_docs_page_the_project_cites_exists():
    cited = {}
    for folder in ("scripts", "policies", "rollout", "components", "alerts", "dashboards", "docs", ".github", "tools"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in ("", ".py", ".md", ".yml", ".sh") and "__pycache__" not in path.parts:
                for found in DOC_REFERENCE.findall(path.read_text(errors="replace")):
                    cited.setdefault(found, path.relative_to(ROOT))
    for found in DOC_REFERENCE.findall((ROOT / "README.md").read_text()):
        cited.setdefault(found, "README.md")
    missing = {page: str(where) for page, where in cited.items() if not (ROOT / page).is_file()}
    assert missing == {}
    assert "docs/secrets.md" in cited


def test_the_packs_docstrings_cite_only_options_it_has():
    import argparse
    import policies.pack as pack

    text = "\n".join(filter(None, [pack.__doc__, *(getattr(pack, n).__doc__ for n in dir(pack)
                                                   if callable(getattr(pack, n)))]))
    cited = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))
    seen: list[argparse.ArgumentParser] = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        seen.append(self)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            pack.main(["--stack", "staging"])
    finally:
        argparse.ArgumentParser.parse_args = real
    options = {o for action in seen[0]._actions for o in action.option_strings}
    pulumi = {"--policy-pack", "--policy-pack-config"}
    assert cited - pulumi <= options, cited - pulumi - options


# --- the Stage watch --------------------------------------------------------------------


def test_the_stage_watch_runs_hourly_configurably_and_advances_each_service_on_its_own():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "stage-watch.yml").read_text())
    on = workflow.get("on") or workflow.get(True)
    assert on["schedule"] == [{"cron": "17 * * * *"}]
    text = (ROOT / ".github" / "workflows" / "stage-watch.yml").read_text()
    assert "vars.STAGE_WATCH_EVERY_HOURS" in text
    assert 'rollout advance --stack "$stack" --all-services --evidence' in text


def test_every_deployment_a_production_stack_declares_passes_pod_security(project):
    """The services', the relay's and (with an operator already present) the blackbox exporter's."""
    from rollout.engine.harness import run_program
    from rollout.engine.policy_runner import resource_violations

    def change(config):
        config["rollout:monitoring"]["install"] = False
        config["rollout:rollback"] = {"fastPath": True, "relay": {
            "image": "ghcr.io/example/rollout-relay@sha256:" + "ab" * 32, "repository": "example/rollout"}}
        for name in ("relayToken", "relayForgeToken"):
            config["rollout:secrets"][name] = dict(config["rollout:secrets"]["smtpPassword"])

    edit_stack(project, "production", change)
    run = run_program("production", project)
    deployments = {r.name for r in run.of_type("kubernetes:apps/v1:Deployment")}
    assert {"genesis-stable", "genesis-canary", "rollout-relay-deployment", "monitoring-blackbox-deployment"} <= deployments
    found = [v for v in resource_violations(run, utc_now()) if v.policy in (
        "rollout-pod-security", "rollout-await-readiness", "rollout-production-pace")]
    assert found == []
