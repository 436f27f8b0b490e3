"""An edit changes only the lines it must, whatever the file's layout, and follows a symlink.

`rollout advance`, `rollback`, `release` and `promote` insert their lines (or
replace one value) and keep every other byte: CRLF line breaks, a BOM, a final
``...``, trailing spaces, comments after the history, anchors nothing uses,
indentation another tool chose. A stack file that is a symlink is edited
through it: the link stays, its target changes, and both names take one lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from figures import count
from rollout.cli import main
from rollout.model.errors import Busy
from rollout.load.stackfile import locked
from stackfiles import FIXTURE, SERVICE

#: The note an edit prints when it could not splice its lines and rewrote the whole file.
REWRITTEN = "could not be edited line by line"

BASE = (FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text()
LAST_ENTRY = '          - weight: 10\n            startedAt: "2026-11-18T09:00:00Z"\n'
assert LAST_ENTRY in BASE


def only_inserted(before: str, after: str) -> str:
    """What ``after`` inserts into ``before`` in one place; fails if anything else changed."""
    prefix = 0
    while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while suffix < len(before) - prefix and before[len(before) - 1 - suffix] == after[len(after) - 1 - suffix]:
        suffix += 1
    assert prefix + suffix == len(before), "the edit changed text it did not need to"
    return after[prefix:len(after) - suffix]


def history(text: str) -> list[dict]:
    document = yaml.safe_load(text.lstrip("\ufeff"))
    return next(s for s in document["config"]["rollout:services"] if s["name"] == SERVICE)["rollout"]["history"]


def run(project: Path, *args: str) -> int:
    return main(["--project", str(project), *args])


def write(project: Path, text: str) -> Path:
    path = project / "stacks" / "Pulumi.staging.yaml"
    path.write_bytes(text.encode("utf-8"))
    return path


def _services_last(text: str) -> str:
    start, end = text.index("  rollout:services:\n"), text.index("  rollout:flags:\n")
    return text[:start] + text[end:] + text[start:end]


LAYOUTS = {
    "CRLF line breaks": lambda t: t.replace("\n", "\r\n"),
    "a BOM": lambda t: "\ufeff" + t,
    "a final document end": lambda t: t + "...\n",
    "a document start and end": lambda t: "---\n" + t + "...\n",
    "trailing spaces": lambda t: t.replace("\n", "  \n"),
    "an unused anchor": lambda t: t.replace("  rollout:slo:\n", "  rollout:slo: &slo\n"),
    "no final line break": lambda t: t.rstrip("\n"),
    "the history last in the file, no final line break": lambda t: _services_last(t).rstrip("\n"),
    "a comment after the last entry": lambda t: t.replace(LAST_ENTRY, LAST_ENTRY + "          # the next stage is 25\n\n"),
    "an end-of-line comment on the last entry": lambda t: t.replace('"2026-11-18T09:00:00Z"\n', '"2026-11-18T09:00:00Z"  # ten\n'),
    "a block scalar last in the last entry": lambda t: t.replace(LAST_ENTRY, LAST_ENTRY + "            reason: |\n              two\n              lines\n"),
    "entries indented by 4 under a dash at 2": lambda t: t.replace("          - weight:", "          -   weight:").replace(
        "            startedAt:", "              startedAt:"),
    "list items not indented (PyYAML's layout)": lambda t: t.replace("          - weight:", "        - weight:").replace(
        "            startedAt:", "          startedAt:"),
    "mixed indentation elsewhere": lambda t: t.replace("        - {after: ", "      - {after: "),
    "a flow history": lambda t: t.replace(
        '        history:\n          - weight: 0\n            startedAt: "2026-11-16T09:00:00Z"\n'
        '          - weight: 5\n            startedAt: "2026-11-17T09:00:00Z"\n' + LAST_ENTRY,
        '        history: [{weight: 0, startedAt: "2026-11-16T09:00:00Z"}, {weight: 5, startedAt: "2026-11-17T09:00:00Z"},\n'
        '          {weight: 10, startedAt: "2026-11-18T09:00:00Z"}]  # kept\n'),
    "tabs in comments and non-ASCII text": lambda t: t.replace("# Append-only", "#\tAppend-only, überall"),
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("command", [("advance",), ("rollback", "--reason", 'a "quoted" reason:\u2028é\x85 #x')],
                         ids=["advance", "rollback"])
def test_an_edit_inserts_its_entry_and_keeps_every_other_byte(project, capsys, layout, command):
    before = LAYOUTS[layout](BASE)
    path = write(project, before)
    assert run(project, command[0], "--stack", "staging", *command[1:]) == 0, capsys.readouterr().err
    after = path.read_bytes().decode("utf-8")
    inserted = only_inserted(before, after)
    assert REWRITTEN not in capsys.readouterr().err
    if "\r\n" in before:
        assert inserted.count("\n") == inserted.count("\r\n")
    entries = history(after)
    assert len(entries) == 4 and entries[-1]["weight"] == (25 if command[0] == "advance" else 0)
    if command[0] == "rollback":
        assert entries[-1]["reason"] == command[2]
    count("stack file edits", "layouts kept byte for byte outside the new lines", 1)


@pytest.mark.parametrize("layout", ["CRLF line breaks", "a BOM", "trailing spaces", "a final document end"])
def test_a_release_and_a_promote_change_only_their_values_and_entries(project, capsys, layout):
    before = LAYOUTS[layout](BASE)
    path = write(project, before)
    assert run(project, "release", "--stack", "staging", "--image", "ghcr.io/example/genesis:1.6.0") == 0, \
        capsys.readouterr().err
    after = path.read_bytes().decode("utf-8")
    removed = set(before.splitlines()) - set(after.splitlines())
    assert {line.strip() for line in removed} == {"image: ghcr.io/example/genesis:1.5.0"}, removed
    assert after.startswith(before[:200]) and after.endswith(before[-40:])
    assert REWRITTEN not in capsys.readouterr().err


def test_an_edit_through_a_symlink_changes_the_real_file_and_keeps_the_link(project, tmp_path, capsys):
    real = tmp_path / "elsewhere" / "staging.yaml"
    real.parent.mkdir()
    real.write_text(BASE)
    link = project / "stacks" / "Pulumi.staging.yaml"
    link.unlink()
    link.symlink_to(real)
    assert run(project, "rollback", "--stack", "staging", "--reason", "through a link") == 0, capsys.readouterr().err
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert history(real.read_text())[-1]["reason"] == "through a link"
    only_inserted(BASE, real.read_text())
    assert not list(link.parent.glob("*.tmp")) and not list(real.parent.glob("*.tmp"))


def test_both_names_of_a_symlinked_stack_file_take_the_same_lock(project, tmp_path):
    real = project / "stacks" / "Pulumi.staging.yaml"
    link = project / "stacks" / "Pulumi.alias.yaml"
    link.symlink_to(real.name)
    with locked(real, project):
        with pytest.raises(Busy):
            with locked(link, project, wait_s=0.2):
                pass
    with locked(link, project):
        with pytest.raises(Busy):
            with locked(real, project, wait_s=0.2):
                pass


# --- generated layouts ---------------------------------------------------------------

newlines = st.sampled_from(["\n", "\r\n"])
layout_choices = st.fixed_dictionaries({
    "newline": newlines,
    "bom": st.booleans(),
    "start": st.booleans(),
    "end": st.sampled_from(["", "...\n", "# end\n", "\n\n"]),
    "trailing": st.sampled_from(["", " ", "\t", "  # note"]),
    "after_history": st.sampled_from(["", "          # next: 25\n", "\n", "        # dedented comment\n\n"]),
    "indent": st.sampled_from([("          - ", "            "), ("        - ", "          "), ("          -   ", "              ")]),
    "anchor": st.booleans(),
    "final_break": st.booleans(),
})


def generated(choice: dict) -> str:
    dash, key = choice["indent"]
    text = BASE.replace("          - weight:", f"{dash}weight:").replace("            startedAt:", f"{key}startedAt:")
    last = f'{dash}weight: 10\n{key}startedAt: "2026-11-18T09:00:00Z"\n'
    text = text.replace(last, last + choice["after_history"])
    if choice["anchor"]:
        text = text.replace("  rollout:canary:\n", "  rollout:canary: &canary\n")
    text = "".join(f"{line}{choice['trailing']}\n" if line.strip() else "\n" for line in text.split("\n")[:-1])
    text = ("---\n" if choice["start"] else "") + text + choice["end"]
    if not choice["final_break"]:
        text = text.rstrip("\n")
    text = text.replace("\n", choice["newline"])
    return ("\ufeff" if choice["bom"] else "") + text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=layout_choices)
def test_any_layout_keeps_every_byte_outside_the_new_entry(project, capsys, choice):
    before = generated(choice)
    path = write(project, before)
    try:
        yaml.safe_load(before.lstrip("\ufeff"))
    except yaml.YAMLError:
        count("stack file edits", "generated layouts: not YAML, skipped by construction", 1)
        return
    code = run(project, "rollback", "--stack", "staging", "--reason", "generated")
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "internal error" not in err
    if code == 0:
        only_inserted(before, path.read_bytes().decode("utf-8"))
        assert REWRITTEN not in err
        count("stack file edits", "generated layouts: edited, every other byte kept", 1)
    else:
        assert path.read_bytes().decode("utf-8") == before
        count("stack file edits", "generated layouts: refused as bad input, unchanged", 1)


def test_the_lock_file_of_a_link_lies_beside_its_target(project, tmp_path):
    real = tmp_path / "real" / "Pulumi.staging.yaml"
    real.parent.mkdir()
    real.write_text(BASE)
    link = project / "stacks" / "Pulumi.staging.yaml"
    link.unlink()
    os.symlink(real, link)
    with locked(link, project):
        assert (real.parent / ".Pulumi.staging.yaml.lock").exists()


def test_the_rewrite_note_the_layout_tests_look_for_is_the_one_an_edit_prints(project, monkeypatch):
    """The layout tests assert REWRITTEN is absent: it must be what an edit says when it rewrites."""
    from rollout.gates import edits

    monkeypatch.setattr(edits, "append_history", lambda *args, **kwargs: True)
    path = project / "stacks" / "Pulumi.staging.yaml"
    (note,) = edits.apply(path, project, edits.Edit([], [], []))
    assert REWRITTEN in note and "rewritten as a whole" in note
