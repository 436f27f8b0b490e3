"""`make up` (scripts/up) without a Pulumi CLI: says nothing was deployed, does the offline work, exits 1."""

from __future__ import annotations

import shutil
import subprocess

from conftest import ROOT


def test_up_without_a_pulumi_cli_exits_1_after_the_offline_equivalents(tmp_path):
    # A PATH with the basic tools but no pulumi; HOME without ~/.pulumi; the installer unreachable.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "dirname", "cat", "sh", "git", "sha1sum", "cut", "rm", "mkdir"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "curl").write_text("#!/bin/sh\nexit 7\n")
    (bin_dir / "curl").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "up"), "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NOTHING WAS DEPLOYED" in result.stdout
    assert "config valid" in result.stdout
    assert (ROOT / "build" / "dev" / "rendered" / "flags" / "flags.json").is_file()
