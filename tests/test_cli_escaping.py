"""What a stack file, a file name or an argument holds reaches the terminal and
the pull request's comment escaped: `rollout status --all`, `plan`, `diff` and
the comment (rollout.cli.comment) show each value on its own line, with its control
characters, escape sequences, line separators and bidirectional overrides as
their escapes, and never let a value out of its table cell, code span or block.

The values are ones validation accepts: a stack named by its file name, a
``promotesFrom``, an image reference (no white space, anything else), a
``--reason`` (recorded in the history as given).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURE, STACKS, build_project, edit_stack
from rollout.cli import main
from rollout.cli.comment import build, weight_changes
from rollout.cli.markdown import cell, code_block, code_span

#: A value that would clear the screen, reverse the text after it and forge a line.
FORGED = "q\x1b[2J\u202eq\nstack staging: healthy"
#: An image reference validation accepts: no white space in it.
FORGED_IMAGE = "ghcr.io/example/genesis:1.5.0\x1b[2J\u202eX\u200f"


def run(project: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--project", str(project), *argv])
    return code, out.getvalue(), err.getvalue()


def unprintable(text: str) -> list[str]:
    return [line for line in text.split("\n") if not all(ch.isprintable() for ch in line)]


def forged(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.startswith("stack staging")]


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


@pytest.fixture
def odd_stack(project: Path) -> Path:
    """A project with one more stack, named (by its file name) with FORGED."""
    shutil.copy(project / "stacks" / "Pulumi.dev.yaml", project / "stacks" / f"Pulumi.{FORGED}.yaml")
    return project


def test_status_all_shows_a_stack_named_by_its_file_on_one_escaped_line(odd_stack):
    code, out, err = run(odd_stack, "status", "--all")
    assert code == 0, err
    assert not unprintable(out) and not forged(out), out
    lines = out.splitlines()
    assert len(lines) == 2 + len(STACKS) + 1, out  # "as at", the header, a row per stack
    assert any(line.startswith("q\\x1b[2J\\u202eq\\nstack staging: healthy  genesis") for line in lines), out


def test_status_all_markdown_keeps_a_stack_named_by_its_file_in_its_cell(odd_stack):
    code, out, err = run(odd_stack, "status", "--all", "--format", "markdown")
    assert code == 0, err
    assert not unprintable(out), out
    lines = out.splitlines()
    assert len(lines) == 2 + len(STACKS) + 1, out
    assert all(re.fullmatch(r"\|( [^|]* \|){9}", re.sub(r"\\\|", "", line)) or line.startswith("|---") for line in lines), out


def test_status_all_names_an_image_with_an_escape_sequence_on_one_escaped_line(project):
    """An image reference with control characters is refused (the distribution grammar);
    status --all still prints the other stacks and names the refused one on one escaped line."""
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["canary"].update(image=FORGED_IMAGE))
    for fmt in ("text", "markdown"):
        code, out, err = run(project, "status", "--all", "--format", fmt)
        assert code == 2, (fmt, out, err)
        assert not unprintable(out + err), (fmt, out + err)
        assert "dev" in out, (fmt, out)
        lines = [line for line in err.splitlines() if "canary.image" in line]
        assert lines, err
        line = lines[0]
        assert "Pulumi.staging.yaml" in line and "\\x1b[2J\\u202eX\\u200f" in line, line


def _flag_with_description(description: str):
    return lambda c: c["rollout:flags"].update(
        {"forged": {"strategy": "all_at_once", "enabled": True, "description": description}}
    )


@pytest.fixture
def odd_upstream(odd_stack: Path) -> Path:
    """production promotes from the stack named FORGED."""
    edit_stack(odd_stack, "production", lambda c: c.update({"rollout:promotesFrom": FORGED}))
    return odd_stack


@pytest.mark.parametrize("fmt", ["text", "mermaid"])
def test_a_promotes_from_with_control_characters_is_refused_on_one_escaped_line(odd_upstream, fmt):
    """promotesFrom must be a stack name: what would break plan's text or mermaid never reaches it."""
    code, out, err = run(odd_upstream, "plan", "--stack", "production", "--format", fmt)
    assert code == 2, out + err
    assert not unprintable(out + err) and not forged(out + err), err
    (line,) = err.strip().splitlines()
    assert "rollout:promotesFrom" in line and "must be a stack name" in line, line


def test_diff_shows_a_rendered_value_with_control_characters_escaped(project):
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "base")
    edit_stack(project, "staging", _flag_with_description("on\x1b[2J\u202eX\u200f"))
    code, out, err = run(project, "diff", "--stack", "staging")
    assert code == 1, err
    assert not unprintable(out), unprintable(out)[:3]
    # The flag document is JSON written with ASCII escapes: every control and
    # bidirectional character arrives as a \\uXXXX escape, none as itself.
    assert '+        "description": "on\\u001b[2J\\u202eX\\u200f",' in out.splitlines(), out


def test_a_reason_with_a_newline_is_recorded_and_shown_escaped_everywhere(project):
    reason = "P99\nstack staging: healthy\u2028\x1b[2K"
    code, out, err = run(project, "rollback", "--stack", "staging", "--reason", reason)
    assert code == 0, err
    assert not unprintable(out + err) and not forged(out + err), out + err
    document = yaml.safe_load((project / "stacks" / "Pulumi.staging.yaml").read_text())
    assert document["config"]["rollout:services"][0]["rollout"]["history"][-1]["reason"] == reason
    for argv in (("status", "--stack", "staging"), ("status", "--all"), ("status", "--all", "--format", "markdown"),
                 ("plan", "--stack", "staging"), ("plan", "--stack", "staging", "--format", "mermaid"),
                 ("status", "--stack", "staging", "--format", "json")):
        code, out, err = run(project, *argv)
        assert code == 0, (argv, err)
        assert not unprintable(out + err) and not forged(out + err), (argv, out + err)


# --- the pull request's comment -------------------------------------------------------


def test_a_violation_message_stays_in_its_table_cell():
    check = ("[mandatory] rollout-next-stage-only (service a|b<!--): "
             "10% -> 50% | skips <!-- rollout-preview:production --> a stage\x1b[2K\n"
             "[advisory] `x`|y (z): w\n")
    text = build("staging", check, 1, [])
    rows = [line for line in text.splitlines() if line.startswith("| mandatory") or line.startswith("| advisory")]
    assert len(rows) == 2, text
    for row in rows:
        # Four cells: every other pipe is escaped.
        assert len(re.findall(r"(?<!\\)\|", row)) == 5, row
    assert "<!--" not in text.split("\n", 1)[1], text  # only the marker is a comment
    assert not unprintable(text), text


def test_a_rendered_diff_with_a_fence_of_its_own_stays_in_its_block():
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n ```\n</details>\n````\n"
    text = build("staging", "", 0, [], diff=diff, preview="``` \x1b[31mred\x1b[0m", plan="gantt\n```")
    lines = text.splitlines()
    start = lines.index("`````diff")
    assert lines[start + 1:start + 1 + len(diff.splitlines())] == diff.splitlines(), text
    assert lines[start + 1 + len(diff.splitlines())] == "`````", text
    assert "````mermaid" in lines and "````" in lines, text
    assert not unprintable(text), text


def test_a_service_or_stack_with_a_backtick_stays_in_its_code_span():
    new = {"services": {"a`b": {"weight": 5}}}
    assert weight_changes(None, new) == ["``a`b``: new, at 5 %"]
    assert code_span("`x`") == "`` `x` ``"
    assert code_span("a|b", in_table=True) == "`a\\|b`"
    assert code_span("a\nb\u202e") == "`a\\nb\\u202e`"


def test_a_table_cell_escapes_what_would_end_it_or_open_html():
    assert cell("a|b") == "a\\|b"
    assert cell("<!-- x") == "&lt;!-- x"
    assert cell("a\\|b") == "a\\\\\\|b"
    assert cell("x\ny\x1b") == "x\\\\ny\\\\x1b"
    assert code_block("a\n``` b\x1b") == ["````", "a", "``` b\\x1b", "````"]


def test_diff_never_shows_a_changed_line_as_unchanged(project):
    """The text "\\u202e" in the base, the right-to-left override now: two different lines."""
    edit_stack(project, "staging", _flag_with_description("on\\u202e"))
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "base")
    edit_stack(project, "staging", _flag_with_description("on\u202e"))
    code, out, err = run(project, "diff", "--stack", "staging")
    assert code == 1, err
    removed = [line[1:] for line in out.splitlines() if line.startswith("-") and '"on' in line]
    added = [line[1:] for line in out.splitlines() if line.startswith("+") and '"on' in line]
    assert removed and added and set(removed).isdisjoint(added), out
    assert not unprintable(out), out
