"""The layers of docs/architecture.md hold: arrows only point down.

import-linter reads every import of the production packages (those inside
functions too) and checks them against the contract in pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_import_points_down_the_layers():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, imports",
    [
        ("rollout/model/time.py", "from rollout.load.stack import load_stack"),
        ("rollout/load/files.py", "from rollout.build import render"),
        ("rollout/gates/advice.py", "from rollout.ops import evidence"),
        ("rollout/ops/verify.py", "from rollout.gates import judge"),
        ("alerts/model.py", "from rollout.load import stack"),
        ("policies/rules.py", "from components import service"),
    ],
    ids=lambda value: value,
)
def test_an_upward_or_sideways_import_breaks_the_contract(tmp_path, module, imports):
    """The contract is not vacuous: one import against the grain, even inside a function, fails it."""
    import shutil

    copy = tmp_path / "project"
    for name in ("rollout", "alerts", "dashboards", "components", "policies"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text() + f"\n\ndef _against_the_grain():\n    {imports}\n")
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout or "broken" in result.stdout
