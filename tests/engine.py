"""The real Pulumi engine on a scratch copy of the project.

``engine_project(dest)`` copies the repository (its tracked and new files, not
.venv or build output) into ``dest`` with the reference stacks of
tests/fixtures/project/ in place of stacks/, links the project's virtualenv,
and commits it all (the gates judge a change against the stack file at HEAD).
``EngineProject.pulumi(...)`` then runs the project's own ``tools/bin/pulumi``
(the pinned engine) on a local state backend and a PULUMI_HOME of its own, with
the example passphrase the reference stacks are encrypted with.

A missing engine fails the test that needs it, with the command that builds it:
these tests are the proof that the engine accepts the program, so they never
skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import yaml

from stackfiles import FIXTURE

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PASSPHRASE = "rollout-example-passphrase"
ENGINE_TIMEOUT_S = 900


def require_engine() -> None:
    """Fail (not skip) when the pinned engine or the Kubernetes provider is not installed."""
    for tool in ("pulumi", "pulumi-resource-kubernetes"):
        official = Path.home() / ".pulumi" / "bin" / "pulumi" if tool == "pulumi" else None
        built = subprocess.run([str(ROOT / "scripts" / "go-tool"), "--path", tool], capture_output=True)
        if built.returncode != 0 and not (official and official.exists()) and not os.environ.get("ROLLOUT_PULUMI"):
            raise AssertionError(f"{tool} is not installed: run scripts/install-tools (make test does)")


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    return [name for name in listed if name]


def _copy_compiled(source: Path, copy: Path) -> None:
    """The module's bytecode (``make deps`` compiles the project) beside its copy: still valid,
    since the copy keeps the source's modification time, so the engine's processes load it
    instead of compiling the module again."""
    if source.suffix != ".py":
        return
    compiled = Path(importlib.util.cache_from_source(str(source)))
    if compiled.is_file():
        target = Path(importlib.util.cache_from_source(str(copy)))
        target.parent.mkdir(exist_ok=True)
        shutil.copy2(compiled, target)


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project), "-c", "user.name=rollout tests", "-c", "user.email=tests@example.com", *args],
        capture_output=True, text=True, check=True,
    ).stdout


def commit_all(project: Path, message: str = "deployed") -> None:
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "--allow-empty", "-m", message)


def at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class EngineProject:
    path: Path
    home: Path
    state: Path
    extra_env: dict[str, str]

    @property
    def temp(self) -> Path:
        """The engine's and the provider's temporary folder (made by engine_project)."""
        return self.path.parent / f"{self.path.name}-tmp"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "ROLLOUT_DEBUG"))}
        env.update(
            PATH=f"{self.path / 'tools' / 'bin'}:{os.environ.get('PATH', '')}",
            PULUMI_HOME=str(self.home),
            PULUMI_BACKEND_URL=f"file://{self.state}",
            PULUMI_CONFIG_PASSPHRASE=EXAMPLE_PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            # The tests read a stack's state after a command, never during one: the engine's
            # own setting to write the state once at the end, not after every step, saves
            # about a third of its processor time on an up that creates a stack.
            PULUMI_SKIP_CHECKPOINTS="true",
            # The engine's and the provider's temporary files (the provider writes the
            # kubeconfig it is given to one and leaves it) stay beside the test's project.
            TMPDIR=str(self.temp),
        )
        if "ROLLOUT_PULUMI" in os.environ:
            env["ROLLOUT_PULUMI"] = os.environ["ROLLOUT_PULUMI"]
        env.update(self.extra_env)
        return env

    def pulumi(self, *args: str, timeout: float = ENGINE_TIMEOUT_S) -> subprocess.CompletedProcess:
        """The engine's command line; past ``timeout`` the command and its plugins (the language
        host, the providers, the pack) are killed together and TimeoutExpired raised."""
        command = [str(self.path / "tools" / "bin" / "pulumi"), *args, "--non-interactive", "--color", "never"]
        with subprocess.Popen(command, cwd=self.path, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_session(process.pid)
                process.communicate()
                raise
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def rollout(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rollout.cli", "--project", str(self.path), *args],
            cwd=self.path, env=self.env, capture_output=True, text=True, timeout=300,
        )

    def stack_file(self, stack: str) -> Path:
        return self.path / "stacks" / f"Pulumi.{stack}.yaml"

    def edit(self, stack: str, change) -> None:
        path = self.stack_file(stack)
        document = yaml.safe_load(path.read_text())
        change(document["config"])
        path.write_text(yaml.safe_dump(document, sort_keys=False))

    def init(self, stack: str) -> None:
        made = self.pulumi("stack", "init", stack)
        assert made.returncode == 0, made.stdout + made.stderr

    def policy_config(self, stack: str, *args: str) -> Path:
        out = self.path / "build" / f"policy-config-{stack}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [sys.executable, "-m", "policies.pack", "--stack", stack, *args],
            cwd=self.path, env=dict(self.env, PYTHONPATH=str(self.path)), capture_output=True, text=True, timeout=120,
        )
        assert made.returncode == 0, made.stderr
        out.write_text(made.stdout)
        return out

    def preview(self, stack: str, *args: str) -> subprocess.CompletedProcess:
        return self.pulumi("preview", "-s", stack, "--policy-pack", "policies", *args)

    def up(self, stack: str, *args: str) -> subprocess.CompletedProcess:
        return self.pulumi("up", "-s", stack, "--yes", "--policy-pack", "policies", *args)

    def outputs(self, stack: str) -> dict:
        shown = self.pulumi("stack", "output", "--json", "-s", stack)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)


def engine_project(dest: Path, extra_env: dict[str, str] | None = None, shipped_stacks: bool = False) -> EngineProject:
    """The copy; ``shipped_stacks`` keeps stacks/ as shipped instead of the reference stacks."""
    require_engine()
    dest.mkdir(parents=True, exist_ok=True)
    for name in _project_files():
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
            _copy_compiled(source, dest / name)
    if not shipped_stacks:
        shutil.rmtree(dest / "stacks")
        shutil.copytree(FIXTURE / "stacks", dest / "stacks")
    (dest / ".venv").symlink_to(ROOT / ".venv")
    git(dest, "init", "--quiet")
    commit_all(dest, "the reference project")
    home, state = dest.parent / f"{dest.name}-pulumi-home", dest.parent / f"{dest.name}-state"
    home.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    project = EngineProject(dest, home, state, dict(extra_env or {}))
    project.temp.mkdir(exist_ok=True)
    return project


def stage_history(now: float, weights: list[int], soaked: bool = True) -> list[dict]:
    """History entries ending at ``weights[-1]``: the current stage 26 h old when
    ``soaked`` (longer than any stage's soak), else 10 minutes old."""
    current = now - (26 * 3600 if soaked else 600)
    entries = []
    for index, weight in enumerate(weights):
        started = current - (len(weights) - 1 - index) * 2 * 86400
        entries.append({"weight": weight, "startedAt": at(started)})
    return entries


def service(config: dict, name: str = "genesis") -> dict:
    """One service's mapping in a stack file's ``config``."""
    return next(s for s in config["rollout:services"] if s["name"] == name)


def epoch(stamp: str) -> float:
    """A history entry's ``startedAt`` as seconds since the epoch."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def healthy_evidence(project: "EngineProject", stack: str, workdir: Path, *extra: str) -> Path:
    """``rollout evidence`` of ``stack`` as deployed (its stack outputs), against a real
    Prometheus holding a healthy canary over its current stage; returns the evidence file."""
    outputs = workdir / f"{stack}-deployed.json"
    outputs.write_text(json.dumps(project.outputs(stack)))
    document = yaml.safe_load(project.stack_file(stack).read_text())
    stage_start = epoch(service(document["config"])["rollout"]["history"][-1]["startedAt"])
    evidence = workdir / f"{stack}-evidence.json"
    # The series carry the stack's namespace, as the operator labels its targets (rollout.model.scope).
    namespace = (document["config"].get("rollout:kubernetes") or {}).get("namespace")
    with healthy_canary_prometheus(workdir, stage_start, time.time(), namespace=namespace) as prometheus:
        collected = project.rollout("evidence", "--stack", stack, "--prometheus", prometheus.url,
                                    "--deployed-state", str(outputs), *extra, "--out", str(evidence))
    assert collected.returncode == 0, collected.stderr
    return evidence


@contextmanager
def healthy_canary_prometheus(workdir: Path, stage_start: float, now: float, services=("genesis",), namespace: str | None = None) -> Iterator:
    """A real Prometheus holding a healthy canary and stable since before ``stage_start``,
    its series labelled with ``namespace`` (none: a Docker stack's)."""
    from servers import start_backfilled_prometheus
    from test_e2e_gates import HEALTHY, STEP, openmetrics

    stage = int(stage_start) // STEP * STEP
    end = int(now) // STEP * STEP - STEP
    text = openmetrics({s: {"canary": (HEALTHY, HEALTHY), "stable": (HEALTHY, HEALTHY)} for s in services},
                       start=stage - 2 * 3600, stage=stage, end=end, namespace=namespace)
    config = yaml.safe_dump({"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}})
    with start_backfilled_prometheus(text, workdir, config) as prometheus:
        yield prometheus


def _kill_session(session: int) -> None:
    """SIGKILL every process of ``session``: the engine's command started it, and each plugin it
    starts runs in a process group of its own (so a process-group kill would miss them)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[3]) == session:  # state, ppid, pgrp, session
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
