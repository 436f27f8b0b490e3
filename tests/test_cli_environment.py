"""The environment, not a bug: a full disk, a read-only file system, a closed stdout.

Each is exit 1 (or 2 for an --out that cannot be written) with one line on
stderr naming what failed, never exit 3 "internal error"; the stack file and
any earlier output stay as they were, and no temporary file is left. Output
files are created exclusively, so a symbolic link planted beside them is never
followed. Whatever a path, a name, a reason or a value holds, it reaches the
terminal as one line of printable characters.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from conftest import ROOT
from figures import count
from rollout.cli import main
from rollout.load.stack import load_stack
from rollout.model.state import rollout_state
from servers import closed_port

NOWHERE = f"http://127.0.0.1:{closed_port()}"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert all(ch.isprintable() for ch in lines[0]), lines[0]
    return lines[0]


def _no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.rglob("*.tmp")], "a temporary file was left behind"


ERRNOS = [errno.ENOSPC, errno.EROFS, errno.EPERM, errno.EACCES, errno.ENAMETOOLONG, errno.EDQUOT, errno.EIO]


def _failing_replace(code: int):
    def replace(source, target, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(target))

    return replace


@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
@pytest.mark.parametrize("command", [
    ("rollback", "--reason", "disk trouble"),
    ("advance", "--now", "2030-01-01T00:00:00Z"),
], ids=lambda c: c[0])
def test_a_stack_edit_the_file_system_refuses_exits_1_with_one_line(project, monkeypatch, code, command):
    path = project / "stacks" / "Pulumi.staging.yaml"
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", _failing_replace(code))
    status, out, err = run("--project", str(project), command[0], "--stack", "staging", *command[1:])
    assert status == 1, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    line = one_line("\n".join(line for line in err.splitlines() if line not in notes))
    assert os.strerror(code) in line and "internal error" not in line
    assert path.read_bytes() == before
    _no_temporaries(project / "stacks")
    count("faults: environment", "file system errors that exit 1 with one line", 1)


def _state_file(tmp_path: Path) -> Path:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"stack": "dev", "services": {}}))
    return state


def _evidence(project: Path, tmp_path: Path, out: str) -> tuple[int, str, str]:
    return run("--project", str(project), "evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deadline", "0.2",
               "--deployed-state", str(_state_file(tmp_path)), "--out", out)


@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
def test_evidence_out_the_file_system_refuses_is_one_line_and_keeps_the_old_file(project, tmp_path, monkeypatch, code):
    out = tmp_path / "out" / "evidence.json"
    out.parent.mkdir()
    out.write_text("old\n")
    monkeypatch.setattr(os, "replace", _failing_replace(code))
    status, _, err = _evidence(project, tmp_path, str(out))
    assert status in (1, 2)
    assert os.strerror(code) in one_line(err)
    assert out.read_text() == "old\n"
    _no_temporaries(out.parent)


@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
def test_render_out_the_file_system_refuses_is_one_line(project, tmp_path, monkeypatch, code):
    monkeypatch.setattr(os, "replace", _failing_replace(code))
    status, _, err = run("--project", str(project), "render", "--stack", "dev", "--out", str(tmp_path / "out"))
    assert status in (1, 2)
    assert os.strerror(code) in one_line(err)
    _no_temporaries(tmp_path / "out")


def test_evidence_out_on_a_full_device_is_one_line(project, tmp_path):
    status, _, err = _evidence(project, tmp_path, "/dev/full")
    assert status in (1, 2) and os.strerror(errno.ENOSPC) in one_line(err)


@pytest.mark.parametrize("name", ["x" * 256, "x" * 250, "d" * 300 + "/evidence.json"],
                         ids=["a name too long", "a name just short enough for the file itself", "a folder name too long"])
def test_evidence_out_with_a_long_name_is_written_or_one_line(project, tmp_path, name):
    status, _, err = _evidence(project, tmp_path, str(tmp_path / name))
    if len(Path(name).parts[0]) <= 255:
        assert status == 0, err
        assert json.loads((tmp_path / name).read_text())["stack"] == "dev"
    else:
        assert status in (1, 2) and "too long" in one_line(err)
    _no_temporaries(tmp_path)


def test_a_symlink_planted_at_a_temporary_name_is_never_followed(project, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "evidence.json"
    for name in (".evidence.json.tmp", "evidence.json.tmp", ".evidence.json.tmp.tmp"):
        (tmp_path / name).symlink_to(victim)
    status, _, err = _evidence(project, tmp_path, str(out))
    assert status == 0, err
    assert victim.read_text() == "precious\n"
    assert json.loads(out.read_text())["stack"] == "dev"
    count("faults: environment", "planted symlinks not followed", 1)


def test_render_never_follows_a_symlink_planted_beside_its_files(project, tmp_path):
    out = tmp_path / "out"
    assert run("--project", str(project), "render", "--stack", "dev", "--out", str(out))[0] == 0
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    written = [p for p in out.rglob("*") if p.is_file()]
    for path in written:
        for name in (f"{path.name}.tmp", f".{path.name}.tmp"):
            (path.parent / name).symlink_to(victim)
    assert run("--project", str(project), "render", "--stack", "dev", "--out", str(out))[0] == 0
    assert victim.read_text() == "precious\n"
    assert all(not p.is_symlink() for p in written)
    count("faults: environment", "planted symlinks not followed", len(written))


def test_output_files_get_the_permissions_of_a_plain_write(project, tmp_path):
    out = tmp_path / "evidence.json"
    previous = os.umask(0o022)
    try:
        assert _evidence(project, tmp_path, str(out))[0] == 0
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("argv", [
    ["status", "--all"], ["status", "--stack", "staging"], ["plan", "--stack", "staging"],
    ["flags", "--stack", "dev"], ["status", "--all", "--format", "json"],
], ids=" ".join)
def test_a_closed_stdout_exits_1_with_one_line(argv):
    """`rollout status | head -1`: the reader left before the output was written."""
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    process = subprocess.Popen([sys.executable, "-m", "rollout.cli", *argv], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    err = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=300) == 1, err
    assert "closed" in one_line(err)
    count("faults: environment", "closed stdouts that exit 1 with one line", 1)


@pytest.mark.parametrize("argv", [
    [], ["status"], ["status", "--stakk", "x"], ["render", "--stack", "dev"], ["nope"],
    ["status", "--stack", "a\nstack staging: healthy"], ["verify", "--stack", "dev", "--prometheus", "x"],
    ["rollback", "--stack", "dev", "--reason"], ["status", "--stack", "dev", "--format", "x\x1b[2K"],
], ids=repr)
def test_a_command_line_argparse_refuses_is_one_line(argv):
    status, out, err = run(*argv)
    assert status == 2 and out == ""
    assert one_line(err).startswith("rollout")
    count("faults: environment", "refused command lines shown on one line", 1)


FORGED = "x\nstack staging: healthy\r\x1b[2K\u2028\u202e"


@pytest.mark.parametrize("argv", [
    ["status", "--stack", "staging", "--service", FORGED],
    ["check", "--stack", "staging", "--evidence", f"/nonexistent/{FORGED}"],
    ["advance", "--stack", "staging", "--evidence", f"/nonexistent/{FORGED}"],
    ["render", "--stack", "dev", "--out", f"/proc/{FORGED}"],
    ["evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deployed-state", f"/nonexistent/{FORGED}"],
], ids=lambda a: a[0] + " " + a[-2])
def test_a_control_character_in_an_argument_reaches_the_terminal_escaped(project, argv):
    status, out, err = run("--project", str(project), *argv)
    assert status in (1, 2)
    line = one_line(err)
    assert "\\n" in line and "\\x1b" in line


def test_a_reason_with_control_characters_is_shown_escaped(project):
    status, out, err = run("--project", str(project), "rollback", "--stack", "staging", "--dry-run", "--reason", FORGED)
    assert status == 0, err
    assert not [line for line in out.splitlines() if line.startswith("stack staging")]
    assert all(ch.isprintable() for line in out.splitlines() for ch in line)
    assert '"x\\nstack staging: healthy\\r\\u001b[2K\\u2028\\u202e"' in out


def test_a_value_from_an_evidence_file_reaches_the_terminal_escaped(project, tmp_path):
    """An evidence file whose recorded detail could forge a line of the report."""
    config = load_stack("staging", project)
    state = rollout_state(config, "staging")
    state["services"]["genesis"]["weight"] = 5
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"rolloutState": state}))
    evidence = tmp_path / "evidence.json"
    assert run("--project", str(project), "evidence", "--stack", "staging", "--prometheus", NOWHERE,
               "--deadline", "0.2", "--deployed-state", str(path), "--out", str(evidence))[0] == 0
    document = json.loads(evidence.read_text())
    for record in document["services"]["genesis"]["queries"].values():
        record["detail"] = FORGED
    document["services"]["genesis"]["release"] = FORGED
    evidence.write_text(json.dumps(document))
    status, out, err = run("--project", str(project), "check", "--stack", "staging", "--evidence", str(evidence))
    assert status == 1, out + err
    shown = (out + err).splitlines()
    assert not [line for line in shown if line.startswith("stack staging: healthy")]
    assert all(ch.isprintable() for line in shown for ch in line), shown
    assert any("x\\nstack staging: healthy" in line for line in shown), shown
