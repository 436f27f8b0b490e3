"""`make up` (scripts/up) when the engine can be neither installed nor built: says
nothing was deployed and why, does the offline work, exits 1. The deployment
itself is proven by tests/test_engine.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_up_without_a_pulumi_cli_exits_1_after_the_offline_equivalents(tmp_path):
    # A PATH with the basic tools but no pulumi; HOME without ~/.pulumi; the installer unreachable.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # No go either, and an empty tool cache: the build from Go modules fails too.
    for tool in ("bash", "env", "dirname", "cat", "sh", "git", "sha1sum", "cut", "rm", "mkdir", "python3", "timeout"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    # The interpreter itself, not a version manager's shim.
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(Path(sys.executable).resolve())
    (bin_dir / "curl").write_text("#!/bin/sh\nexit 7\n")
    (bin_dir / "curl").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "ROLLOUT_TOOLS_CACHE": str(tmp_path / "tools")}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "up"), "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NOTHING WAS DEPLOYED" in result.stdout
    assert "cannot build pulumi from github.com/pulumi/pulumi/pkg/v3@v" in result.stderr
    assert "the go command is not installed" in result.stderr
    assert "config valid" in result.stdout
    assert (ROOT / "build" / "dev" / "rendered" / "flags" / "flags.json").is_file()


def test_a_failed_build_names_the_module_and_the_step(tmp_path):
    """A pinned version the module proxy does not serve: go-tool says which module, which step, exit 1."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "go-tool", tmp_path / "scripts" / "go-tool")
    (tmp_path / "tools").mkdir()
    pins = (ROOT / "tools" / "versions.env").read_text()
    pins = "\n".join("PULUMI_VERSION=0.0.0-rollout-missing" if line.startswith("PULUMI_VERSION=") else line
                     for line in pins.splitlines())
    (tmp_path / "tools" / "versions.env").write_text(pins + "\n")
    env = {**os.environ, "ROLLOUT_TOOLS_CACHE": str(tmp_path / "cache"), "GOFLAGS": "-mod=mod"}
    result = subprocess.run([str(tmp_path / "scripts" / "go-tool"), "pulumi"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "github.com/pulumi/pulumi/pkg/v3@v0.0.0-rollout-missing: go mod download failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache" / "pulumi-0.0.0-rollout-missing" / "pulumi").exists()
