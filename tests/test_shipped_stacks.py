"""The shipped stacks, whatever rollout state a team has put them in, are valid stacks.

Every other test builds its stack files from the reference project
(tests/stackfiles.py): stacks/ changes with each rollout step. Here only what
must hold for any valid stack is checked: it loads, renders, has a well-formed
rollout state and flag document, and passes its own policies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from flagd_schema import flags_validator
from rollout.build.flags import dumps, flag_document
from rollout.load.stack import load_stack
from rollout.build.render import render
from rollout.model.state import rollout_state

#: Every stack file in stacks/, including any a team has added.
SHIPPED = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def test_the_example_stacks_are_shipped():
    assert {"local", "dev", "staging", "production"} <= set(SHIPPED)


@pytest.mark.parametrize("stack", SHIPPED)
def test_the_shipped_stack_loads_and_renders(stack, tmp_path):
    config = load_stack(stack)
    render(config, stack, tmp_path / "rendered")
    assert (tmp_path / "rendered" / "flags" / "flags.json").is_file()
    document = json.loads(dumps(flag_document(config, stack)))
    assert not list(flags_validator().iter_errors(document))
    state = rollout_state(config, stack)
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert set(state["services"]) == {service.name for service in config.services}


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    """The shipped project as its own commit: `check` then judges each stack against itself."""
    repo = tmp_path_factory.mktemp("shipped")
    shutil.copy(ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", repo / "stacks")
    git = ["git", "-C", str(repo), "-c", "user.name=rollout tests", "-c", "user.email=tests@example.com"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "as shipped"], check=True)
    return repo


@pytest.mark.parametrize("stack", SHIPPED)
def test_the_shipped_stack_passes_its_own_policies(stack, committed):
    result = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(committed), "check", "--stack", stack],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_other_test_reads_the_shipped_stacks():
    """Behaviour tests pass a project (FIXTURE or their own) to every loader, never the default stacks/."""
    import ast

    readers = {"load_stack": 2, "run_program": 2}
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name in {"test_shipped_stacks.py", "test_project_files.py"}:
            continue
        source = path.read_text()
        if 'ROOT / "stacks"' in source:
            offenders.append(f"{path.name}: ROOT / \"stacks\"")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in readers:
                given = len(node.args) + sum(1 for k in node.keywords if k.arg == "root")
                if given < readers[node.func.id]:
                    offenders.append(f"{path.name}:{node.lineno}: {node.func.id} without a project")
    assert offenders == [], offenders
