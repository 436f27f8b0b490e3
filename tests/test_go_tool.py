"""scripts/go-tool's cache: one build of a tool version at a time, and no partial build counted.

The build step is replaced by a fake that writes a small file (no Go build
runs here); the lock and the rename are the script's own. Concurrent callers are
separate processes, as two `scripts/go-tool NAME` runs are.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import multiprocessing
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT


def _load():
    loader = importlib.machinery.SourceFileLoader("go_tool", str(ROOT / "scripts" / "go-tool"))
    spec = importlib.util.spec_from_loader("go_tool", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["go_tool"] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def _fake_tool(go_tool):
    return go_tool.Tool("fake-tool", "example.com/fake", "v1.0.0", "1.0.0", "./cmd/fake")


def _build_in_process(cache: str, calls: str, seconds: float, fail: bool, results) -> None:
    os.environ["ROLLOUT_TOOLS_CACHE"] = cache
    go_tool = _load()

    def compile_to(tool, partial: Path, log, env) -> None:
        with open(calls, "a") as out:
            out.write(f"{os.getpid()}\n")
        partial.write_bytes(b"#!/bin/sh\necho half")
        time.sleep(seconds)
        if fail:
            raise go_tool.BuildFailed("the fake build failed half way")
        partial.write_bytes(b"#!/bin/sh\necho fake-tool 1.0.0\n")

    try:
        results.put(("ok", str(go_tool.build(_fake_tool(go_tool), compile_to))))
    except go_tool.BuildFailed as err:
        results.put(("failed", str(err)))


def _run_concurrently(tmp_path: Path, n: int, seconds: float = 1.0, fail: bool = False) -> tuple[list, list[str]]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    calls = tmp_path / "calls"
    calls.touch()
    processes = [
        context.Process(target=_build_in_process, args=(str(tmp_path / "cache"), str(calls), seconds, fail, results))
        for _ in range(n)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return [results.get(timeout=5) for _ in processes], calls.read_text().split()


def test_concurrent_builds_of_one_tool_build_it_once_and_all_use_the_result(tmp_path):
    outcomes, calls = _run_concurrently(tmp_path, 3)
    assert len(calls) == 1, "one build; the others waited and used it"
    paths = {path for status, path in outcomes if status == "ok"}
    assert len(outcomes) == 3 and len(paths) == 1
    (binary,) = paths
    assert Path(binary).read_bytes() == b"#!/bin/sh\necho fake-tool 1.0.0\n" and os.access(binary, os.X_OK)
    leftovers = [p.name for p in Path(binary).parent.iterdir() if p.name != "fake-tool"]
    assert leftovers == []


def test_a_failed_build_leaves_nothing_cached_and_the_next_caller_builds(tmp_path):
    outcomes, calls = _run_concurrently(tmp_path, 2, seconds=0.5, fail=True)
    # Each caller tried once (the second after the first failed) and neither counts as built.
    assert [status for status, _ in outcomes] == ["failed", "failed"] and len(calls) == 2
    folder = tmp_path / "cache" / "fake-tool-1.0.0"
    assert not (folder / "fake-tool").exists()
    assert [p.name for p in folder.iterdir()] == [], "no partial binary is left behind"
    outcomes, calls = _run_concurrently(tmp_path, 1, seconds=0.1)
    assert outcomes[0][0] == "ok" and len(calls) == 3


def test_the_path_of_a_tool_not_built_is_exit_1(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("ROLLOUT_TOOLS_CACHE", str(tmp_path))
    done = subprocess.run([str(ROOT / "scripts" / "go-tool"), "--path", "etcd"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""


@pytest.mark.parametrize("pinned", ["", "0" * 64])
def test_a_downloaded_engine_runs_only_when_it_matches_its_pinned_checksum(tmp_path, pinned):
    """scripts/install-tools engine, with curl and go replaced: the download is refused (no pin,
    or a pin it does not match) and the Go build is tried instead; nothing downloaded runs."""
    import subprocess

    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "ran"
    (fake / "curl").write_text(
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then out=\"$2\"; fi; shift; done\n"
        f"printf '#!/bin/sh\\ntouch {marker}\\n' > \"$out\"\n"
    )
    (fake / "go").write_text("#!/bin/sh\necho 'fake go: no build here' >&2\nexit 1\n")
    for tool in ("curl", "go"):
        (fake / tool).chmod(0o755)
    # A copy of the scripts with tools/versions.env pinning ``pinned``.
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    (root / "tools").mkdir()
    for script in ("install-tools", "go-tool"):
        shutil.copy2(ROOT / "scripts" / script, root / "scripts" / script)
    pins = (ROOT / "tools" / "versions.env").read_text()
    assert "\nPULUMI_LINUX_X64_SHA256=" in pins
    (root / "tools" / "versions.env").write_text(re.sub(r"(?m)^PULUMI_LINUX_X64_SHA256=.*$", f"PULUMI_LINUX_X64_SHA256={pinned}", pins))
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "ROLLOUT_TOOLS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([str(root / "scripts" / "install-tools"), "engine"], capture_output=True, text=True, env=env,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert not marker.exists(), "a download that was not verified ran"
    assert not (tmp_path / "home" / ".pulumi" / "bin" / "pulumi").exists()
    if pinned:
        assert "does not match its pinned checksum" in output
    else:
        assert "no pinned checksum" in output
    assert "building the CLI from Go modules" in output
