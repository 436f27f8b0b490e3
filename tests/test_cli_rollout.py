"""`rollout status/advance/rollback/evidence/check` as a user runs them, on scratch copies of the stacks."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, edit_stack
from rollout.load.stack import load_stack
from servers import closed_port

SERVICE = "genesis"


def rollout(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def git(project: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(project), "-c", "user.name=rollout tests", "-c", "user.email=tests@example.com", *args],
        capture_output=True, text=True, check=True,
    )
    return result.stdout


def commit_all(project: Path, message: str = "deployed") -> None:
    if not (project / ".git").exists():
        git(project, "init", "--quiet")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", message)


def stack_text(project: Path, stack: str) -> str:
    return (project / "stacks" / f"Pulumi.{stack}.yaml").read_text()


def history(project: Path, stack: str) -> list[dict]:
    document = yaml.safe_load(stack_text(project, stack))
    service = next(s for s in document["config"]["rollout:services"] if s["name"] == SERVICE)
    return service["rollout"]["history"]


def added_lines(before: str, after: str) -> list[str]:
    """The lines ``after`` adds to ``before``; fails if any line was removed or changed."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    removed = [line for line in diff if line.startswith("- ")]
    assert not removed, removed
    return [line[2:] for line in diff if line.startswith("+ ")]


def test_status_shows_stage_time_in_stage_next_stage_and_earliest_advance(project):
    result = rollout(project, "status", "--stack", "staging")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("genesis: 10% (stage 3 of 7, plan safe) since 2026-11-18T09:00:00Z, ")
    assert lines[0].endswith(" in stage, soak 1d")
    assert lines[1] == "  release: canary ghcr.io/example/genesis:1.5.0 (1 replica), stable ghcr.io/example/genesis:1.4.2 (2 replicas)"
    assert lines[2] == "  next stage: 25%, earliest advance 2026-11-19T09:00:00Z (now)"


def test_advance_appends_the_next_stage_and_keeps_every_comment(project):
    before = stack_text(project, "staging")
    result = rollout(project, "advance", "--stack", "staging")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("genesis: 10% -> 25% from ")
    after = stack_text(project, "staging")
    added = added_lines(before, after)
    assert added[0] == "          - weight: 25"
    assert added[1].startswith('            startedAt: "')
    assert added[2:] == ["            release: ghcr.io/example/genesis:1.5.0", "            plan: safe"]
    assert [e["weight"] for e in history(project, "staging")] == [0, 5, 10, 25]
    comments = [line for line in before.splitlines() if line.strip().startswith("#")]
    assert comments and all(line in after.splitlines() for line in comments)
    # The blank line and the next key stay after the list, not between entries.
    tail = after.split("          - weight: 25\n", 1)[1].splitlines()
    assert tail[3:5] == ["", "  rollout:flags:"]
    assert load_stack("staging", project).service(SERVICE).rollout.weight == 25


def test_advance_without_evidence_refuses_an_unserved_soak_and_changes_nothing(project):
    assert rollout(project, "advance", "--stack", "staging").returncode == 0
    before = stack_text(project, "staging")
    again = rollout(project, "advance", "--stack", "staging")
    assert again.returncode == 1, again.stderr
    assert "[mandatory] rollout-soak-served (service genesis): the 25% stage began " in again.stderr
    assert "advance refused by the gates; Pulumi.staging.yaml is unchanged" in again.stderr
    assert stack_text(project, "staging") == before
    assert [e["weight"] for e in history(project, "staging")] == [0, 5, 10, 25]


def test_advance_at_the_final_stage_is_refused_and_changes_nothing(project):
    def at_100(config):
        config["rollout:services"][0]["rollout"]["history"].append({"weight": 50, "startedAt": "2026-11-19T09:00:00Z"})
        config["rollout:services"][0]["rollout"]["history"].append({"weight": 75, "startedAt": "2026-11-20T09:00:00Z"})
        config["rollout:services"][0]["rollout"]["history"].append({"weight": 100, "startedAt": "2026-11-21T09:00:00Z"})

    edit_stack(project, "dev", at_100)
    before = stack_text(project, "dev")
    result = rollout(project, "advance", "--stack", "dev", "--service", SERVICE)
    assert result.returncode == 1
    assert "genesis: at the final stage of plan fast (100%); nothing to advance" in result.stderr
    assert stack_text(project, "dev") == before


def test_rollback_appends_weight_0_with_its_reason_and_keeps_every_comment(project):
    before = stack_text(project, "production")
    result = rollout(project, "rollback", "--stack", "production", "--reason", "P99 over budget: 1.4 s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("genesis: 5% -> 0% from ")
    added = added_lines(before, stack_text(project, "production"))
    assert added[0] == "          - weight: 0"
    assert added[2:] == ["            release: ghcr.io/example/genesis:1.5.0", "            plan: safe",
                         '            reason: "P99 over budget: 1.4 s"']
    last = history(project, "production")[-1]
    assert (last["weight"], last["reason"]) == (0, "P99 over budget: 1.4 s")


def test_rollback_succeeds_even_when_the_upstream_stack_would_fail_the_check(project):
    # Staging's experimental flag drops below production's: production no longer
    # loads for any other command, but its rollback must still go through.
    edit_stack(project, "staging", lambda c: c["rollout:flags"]["aatc"].update(percentage=5))
    assert rollout(project, "status", "--stack", "production").returncode == 2
    result = rollout(project, "rollback", "--stack", "production", "--reason", "incident 4711")
    assert result.returncode == 0, result.stderr
    assert history(project, "production")[-1]["weight"] == 0


@pytest.mark.parametrize("reason", ["", "   "], ids=["an empty reason", "a blank reason"])
def test_rollback_needs_a_reason(project, reason):
    before = stack_text(project, "staging")
    result = rollout(project, "rollback", "--stack", "staging", "--reason", reason)
    assert result.returncode == 2 and "--reason must say why" in result.stderr
    assert stack_text(project, "staging") == before


def test_an_unknown_service_is_bad_input(project):
    result = rollout(project, "advance", "--stack", "staging", "--service", "exodus")
    assert result.returncode == 2
    assert result.stderr.strip() == "rollout: --service exodus: not a service of this stack; services: genesis"


def test_check_judges_the_diff_against_the_committed_stack_file(project):
    commit_all(project)
    clean = rollout(project, "check", "--stack", "staging")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "advancing: none (deployed: stacks/Pulumi.staging.yaml at HEAD); gates pass" in clean.stdout

    # A hand edit that skips 25: refused from the history alone.
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["rollout"]["history"].append(
        {"weight": 50, "startedAt": "2026-11-19T09:00:00Z"}))
    skip = rollout(project, "check", "--stack", "staging")
    assert skip.returncode == 1
    assert "[mandatory] rollout-next-stage-only (service genesis): 10% -> 50% skips a stage; " \
           "the next stage of plan safe after 10% is 25%" in skip.stdout
    # Any advance without evidence cannot show its SLOs.
    assert "[mandatory] rollout-canary-within-budget (service genesis): no gate evidence" in skip.stdout


def test_check_allows_a_rollback_without_evidence(project):
    commit_all(project)
    assert rollout(project, "rollback", "--stack", "staging", "--reason", "errors").returncode == 0
    result = rollout(project, "check", "--stack", "staging")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gates pass" in result.stdout


def test_check_with_an_older_base_sees_the_advance_since_then(project):
    commit_all(project, "at 10")
    assert rollout(project, "advance", "--stack", "staging").returncode == 0
    commit_all(project, "at 25")
    assert rollout(project, "check", "--stack", "staging").returncode == 0
    result = rollout(project, "check", "--stack", "staging", "--base", "HEAD~1")
    assert result.returncode == 1
    assert "advancing: genesis (deployed: stacks/Pulumi.staging.yaml at HEAD~1)" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--base", "no-such-ref"), "rollout: --base no-such-ref: not a commit of the repository"),
        (("--base", "0" * 40), f"rollout: --base {'0' * 40}: not a commit of the repository"),
        (("--evidence", "missing.json"), "rollout: --evidence missing.json: no such file"),
    ],
    ids=["an unknown base", "a full commit id the repository does not hold", "a missing evidence file"],
)
def test_check_refuses_bad_gate_input_with_exit_2(project, args, message):
    commit_all(project)
    result = rollout(project, "check", "--stack", "staging", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr


def test_evidence_from_an_unreachable_prometheus_refuses_the_advance(project, tmp_path):
    commit_all(project)
    out = tmp_path / "evidence.json"
    unreachable = f"http://127.0.0.1:{closed_port()}"
    result = rollout(project, "evidence", "--stack", "staging", "--prometheus", unreachable, "--out", str(out),
                     "--deadline", "1")
    assert result.returncode == 0, result.stderr
    evidence = json.loads(out.read_text())
    assert evidence["stack"] == "staging"
    assert evidence["deployedStateSource"] == "stacks/Pulumi.staging.yaml at HEAD"
    assert evidence["deployedState"]["services"][SERVICE]["weight"] == 10
    queries = evidence["services"][SERVICE]["queries"]
    assert {q["status"] for q in queries.values()} == {"unreachable"}
    assert all(q["value"] is None for q in queries.values()), "never recorded as zeros"

    before = stack_text(project, "staging")
    refused = rollout(project, "advance", "--stack", "staging", "--evidence", str(out))
    assert refused.returncode == 1
    assert "rollout-canary-within-budget (service genesis): error ratio: Prometheus was unreachable" in refused.stderr
    assert "advance refused by the gates; Pulumi.staging.yaml is unchanged" in refused.stderr
    assert stack_text(project, "staging") == before

    rolled = rollout(project, "rollback", "--stack", "staging", "--reason", "no metrics")
    assert rolled.returncode == 0
    checked = rollout(project, "check", "--stack", "staging", "--evidence", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_evidence_for_production_records_staging_as_its_upstream(project, tmp_path):
    commit_all(project)
    staging_outputs = tmp_path / "staging-outputs.json"
    result = rollout(project, "evidence", "--stack", "staging", "--prometheus", f"http://127.0.0.1:{closed_port()}",
                     "--deadline", "1")
    staging_state = json.loads(result.stdout)["deployedState"]
    staging_outputs.write_text(json.dumps({"rolloutState": staging_state, "stack": "staging"}))
    out = tmp_path / "production.json"
    result = rollout(project, "evidence", "--stack", "production", "--prometheus", f"http://127.0.0.1:{closed_port()}",
                     "--staging-state", str(staging_outputs), "--out", str(out), "--deadline", "1")
    assert result.returncode == 0, result.stderr
    evidence = json.loads(out.read_text())
    assert evidence["upstreamState"] == staging_state
    assert evidence["upstreamStateSource"] == str(staging_outputs)

    wrong = rollout(project, "evidence", "--stack", "production", "--prometheus", "http://127.0.0.1:1",
                    "--staging-state", str(out))
    assert wrong.returncode == 2


def test_advance_keeps_the_layout_of_a_file_another_tool_wrote(project):
    # PyYAML (and so `edit_stack`) writes list items without indenting them.
    edit_stack(project, "staging", lambda c: None)
    before = stack_text(project, "staging")
    assert "\n  - name: genesis\n" in before
    result = rollout(project, "advance", "--stack", "staging")
    assert result.returncode == 0 and "re-indented" not in result.stderr
    added = added_lines(before, stack_text(project, "staging"))
    assert [line.strip() for line in added][0] == "- weight: 25" and len(added) == 4


def test_a_file_with_mixed_indentation_keeps_every_line_and_gets_no_note(project):
    path = project / "stacks" / "Pulumi.staging.yaml"
    text = path.read_text().replace("      steps:\n        - {after: 0d", "      steps:\n      - {after: 0d", 1)
    text = text.replace("\n        - {after: ", "\n      - {after: ")
    path.write_text(text)
    result = rollout(project, "rollback", "--stack", "staging", "--reason", "mixed")
    assert result.returncode == 0, result.stderr
    assert "note: Pulumi.staging.yaml" not in result.stderr
    assert len(added_lines(text, path.read_text())) == 5
    assert history(project, "staging")[-1] == {"weight": 0, "startedAt": history(project, "staging")[-1]["startedAt"],
                                               "release": "ghcr.io/example/genesis:1.5.0", "plan": "safe",
                                               "reason": "mixed"}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "no temporary file left behind"


def test_status_of_production_says_when_it_waits_for_staging(project):
    assert "waits for" not in rollout(project, "status", "--stack", "production").stdout
    assert rollout(project, "rollback", "--stack", "staging", "--reason", "staging incident").returncode == 0
    result = rollout(project, "status", "--stack", "production")
    assert result.returncode == 0, result.stderr
    assert ("  waits for staging: staging is at 0% with ghcr.io/example/genesis:1.5.0; it must complete 10% first"
            in result.stdout.splitlines())


def _evidence_to(project: Path, tmp_path: Path, out: str) -> subprocess.CompletedProcess:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"stack": "dev", "services": {}}))
    return rollout(project, "evidence", "--stack", "dev", "--prometheus", f"http://127.0.0.1:{closed_port()}",
                   "--deadline", "0.2", "--deployed-state", str(state), "--out", out)


def test_evidence_out_through_a_symlink_replaces_its_target_and_keeps_the_link(project, tmp_path):
    target = tmp_path / "evidence" / "latest.json"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    result = _evidence_to(project, tmp_path, str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and json.loads(target.read_text())["stack"] == "dev"


def test_evidence_out_to_a_device_writes_to_it_and_leaves_it_a_device(project, tmp_path):
    result = _evidence_to(project, tmp_path, "/dev/null")
    assert result.returncode == 0, result.stderr
    assert Path("/dev/null").is_char_device()
    assert not Path("/dev/.null.tmp").exists()
