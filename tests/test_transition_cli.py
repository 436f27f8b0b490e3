"""`rollout check` judges the whole transition: each class of unsafe change is refused naming
its gate, and the legitimate way to do the same thing passes (listing what it loosens).

The reference project in a scratch git repository; "deployed" is the stack file at HEAD
(no backend here) or a stack-outputs file; evidence is written as `rollout evidence`
writes it, healthy, over the deployed stage.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import edit_stack
from evidence_counts import counts, with_bounds
from rollout.gates.deployed import state_at_ref
from rollout.model.time import format_time, parse_time
from test_cli_rollout import commit_all, git, rollout

NOW = "2026-11-21T12:00:00Z"
UNTESTED = "ghcr.io/example/genesis:9.9.9"
HEALTHY = {"errorRatio": 0.002, "latencyP95Seconds": 0.21, "latencyP99Seconds": 0.48,
           "consecutiveFailedHealthChecks": 1, "requests": 12_000, **counts(12_000)}


def service(config: dict) -> dict:
    return config["rollout:services"][0]


def healthy_evidence(project: Path, stack: str, now: str = NOW) -> Path:
    """Evidence over the deployed (HEAD) stage of ``stack``, with its upstream's state."""
    at = parse_time(now)
    deployed = state_at_ref(stack, project, "HEAD", at)
    upstream = state_at_ref(deployed["promotesFrom"], project, "HEAD", at) if deployed["promotesFrom"] else None
    record = deployed["services"]["genesis"]
    document = {
        "kind": "rollout-gate-evidence", "version": 1, "stack": stack,
        "collectedAt": format_time(at - timedelta(minutes=2)), "deployedState": deployed,
        "deployedStateSource": "stacks at HEAD", "upstreamState": upstream,
        "services": {"genesis": {"stageWeight": record["weight"], "stageStartedAt": record["stageStartedAt"],
                                 "release": record["release"], "trafficSince": record["stageStartedAt"],
                                 "windowSeconds": 3600,
                                 "queries": {m: with_bounds(m, {"status": "ok", "value": v}) for m, v in HEALTHY.items()}}},
    }
    path = project / f"evidence-{stack}.json"
    path.write_text(json.dumps(document))
    return path


def advance(weight: int, at: str = "2026-11-21T11:00:00Z"):
    return lambda c: service(c)["rollout"]["history"].append({"weight": weight, "startedAt": at})


def check(project: Path, stack: str, *args: str, now: str = NOW):
    return rollout(project, "check", "--stack", stack, "--now", now, *args)


@pytest.fixture
def repo(project: Path) -> Path:
    commit_all(project, "deployed")
    return project


def refused(result, gate: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"[mandatory] {gate} (service " in result.stdout, result.stdout
    return result.stdout


def passes(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gates pass" in result.stdout
    return result.stdout


def test_an_advance_with_healthy_evidence_passes(repo):
    proof = healthy_evidence(repo, "production")
    edit_stack(repo, "production", advance(10))
    out = passes(check(repo, "production", "--evidence", str(proof)))
    assert "loosens:" not in out


# --- 2. a safety setting loosened in the same change as the advance ------------------------


@pytest.mark.parametrize(
    "loosen, loosens",
    [
        (lambda c: c.pop("rollout:promotesFrom"), "promotesFrom staging → none"),
        (lambda c: c.update({"rollout:tier": "staging"}), "tier production → staging"),
        (lambda c: c["rollout:canary"].update(maxErrorRatio=0.5), "canary.maxErrorRatio"),
        (lambda c: c["rollout:kubernetes"].update(namespace="elsewhere"), "namespace rollout-production → elsewhere"),
    ],
    ids=["promotesFrom deleted", "tier lowered", "a threshold loosened", "the namespace changed"],
)
def test_a_loosening_beside_an_advance_is_refused_and_alone_passes_listed(repo, loosen, loosens):
    proof = healthy_evidence(repo, "production")
    edit_stack(repo, "production", lambda c: (loosen(c), advance(10)(c)))
    out = refused(check(repo, "production", "--evidence", str(proof)), "rollout-no-loosening-on-advance")
    assert f"loosens: {loosens}" in out
    git(repo, "checkout", "--", "stacks")
    edit_stack(repo, "production", loosen)
    alone = passes(check(repo, "production"))
    assert f"loosens: {loosens}" in alone


def test_a_safety_flag_switched_off_while_advancing_is_refused(repo):
    edit_stack(repo, "production", lambda c: c["rollout:flags"]["maintenance_mode"].update(enabled=True, reason="a migration"))
    commit_all(repo, "maintenance on, deployed")
    proof = healthy_evidence(repo, "production")
    edit_stack(repo, "production", lambda c: (c["rollout:flags"]["maintenance_mode"].update(enabled=False),
                                              advance(10)(c)))
    out = refused(check(repo, "production", "--evidence", str(proof)), "rollout-no-safety-flag-on-advance")
    assert "loosens: safety flag maintenance_mode on → off" in out


def test_a_plan_shortened_while_advancing_is_judged_by_the_longer_soak(repo):
    now = "2026-11-19T21:00:00Z"  # 12 h into production's 5 % stage: fast's 10 h served, safe's day not
    proof = healthy_evidence(repo, "production", now)
    edit_stack(repo, "production", lambda c: (service(c)["rollout"].update(plan="fast"),
                                              advance(10, "2026-11-19T20:59:00Z")(c)))
    out = refused(check(repo, "production", "--evidence", str(proof), now=now), "rollout-soak-served")
    assert "loosens: plan of genesis safe → fast" in out


# --- 1. a service renamed is the service its route serves --------------------------------------


def test_a_renamed_service_on_an_untested_image_is_that_service_and_refused(repo):
    def rename(c):
        service(c).update(name="genesis-v2")
        service(c)["stable"]["image"] = UNTESTED
        service(c)["rollout"]["history"] = [{"weight": 0, "startedAt": "2026-11-21T11:00:00Z"}]

    edit_stack(repo, "production", rename)
    out = refused(check(repo, "production"), "rollout-history-append-only")
    assert "[mandatory] rollout-stable-completed-release-only (service genesis-v2)" in out
    assert "loosens: service genesis renamed genesis-v2" in out


def test_a_rename_that_keeps_everything_passes_listed(repo):
    edit_stack(repo, "production", lambda c: service(c).update(name="genesis-v2"))
    assert "loosens: service genesis renamed genesis-v2" in passes(check(repo, "production"))


# --- 3. a "rollback" that rewrites history -----------------------------------------------------------


def test_a_deployed_entry_lowered_in_place_is_refused_and_a_rollback_appended_passes(repo):
    edit_stack(repo, "staging", lambda c: service(c)["rollout"]["history"][-1].update(weight=0))
    out = refused(check(repo, "staging"), "rollout-history-append-only")
    assert "history[2] differs from the deployed entry (10% from 2026-11-18T09:00:00Z)" in out
    git(repo, "checkout", "--", "stacks")
    assert rollout(repo, "rollback", "--stack", "staging", "--reason", "errors", "--now", NOW).returncode == 0
    passes(check(repo, "staging"))


# --- 4. no deployed state: the history alone -----------------------------------------------------------


def test_without_any_deployed_state_a_jump_to_100_is_refused(project):
    edit_stack(project, "staging", advance(100))
    out = refused(check(project, "staging"), "rollout-next-stage-only")
    assert "deployed: none: never deployed" in out and "10% -> 100%" in out


def test_a_deployed_state_file_is_what_is_deployed(repo, tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"rolloutState": state_at_ref("staging", repo, "HEAD~0", parse_time(NOW))}))
    edit_stack(repo, "staging", advance(50))
    out = refused(check(repo, "staging", "--deployed-state", str(outputs)), "rollout-next-stage-only")
    assert f"deployed: {outputs})" in out


# --- 5. the judged cannot change the judge ----------------------------------------------------------------


def test_an_advance_beside_a_code_change_is_refused_since_the_base(repo):
    base = git(repo, "rev-parse", "HEAD").strip()
    proof = healthy_evidence(repo, "production")
    (repo / "policies").mkdir()
    (repo / "policies" / "rules.py").write_text("# the judge, changed\n")
    edit_stack(repo, "production", advance(10))
    commit_all(repo, "advance and change the judge")
    out = refused(check(repo, "production", "--base", base, "--evidence", str(proof)), "rollout-stack-files-only")
    assert "policies/rules.py" in out
