"""``rollout diff``: the stack's rendered artifacts in the working tree against those at a git ref.

The project at REF (``git archive``: its stack files, and its code when the
project's code is in the repository) is unpacked into a temporary folder and
rendered there with that code, the working tree with the installed code; the
two folders are compared file by file as unified diffs (``a/`` at REF, ``b/``
the working tree). A stack absent at REF shows every file as added. What a line
holds that is not printable (a control character, an escape sequence, a line
separator or a bidirectional override from a stack file's value) is shown as
its escape (``\\x1b``, ``\\u2028``): one line of the diff per line of the file.

Exit codes (``rollout diff``): 0 no difference, 1 differences (as diff(1)), 2 bad
input (an unknown ref, a stack file that does not load, at REF or here).
"""

from __future__ import annotations

import argparse
import difflib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from rollout.build.render import render
from rollout.cli.output import EXIT_OK, EXIT_REFUSED
from rollout.load.stack import load_stack, stack_file
from rollout.model.errors import ConfigError, UsageError, printable, printable_lines


def _git(project: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=not binary, timeout=120)
    except FileNotFoundError:
        raise UsageError("rollout diff needs git, and it is not installed") from None


def _archive(project: Path, ref: str, into: Path) -> None:
    """Unpack the project folder as committed at ``ref`` into ``into``."""
    verify = _git(project, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if verify.returncode != 0:
        if "not a git repository" in verify.stderr:
            raise UsageError(f"--base {ref}: {project} is not in a git repository")
        raise UsageError(f"--base {ref}: not a commit of the repository at {project}")
    prefix = _git(project, "rev-parse", "--show-prefix").stdout.strip()
    commit = verify.stdout.strip()
    result = _git(project, "archive", "--format=tar", f"{commit}:{prefix}" if prefix else commit, binary=True)
    if result.returncode != 0:
        raise UsageError(f"--base {ref}: git archive failed: {result.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(into, filter="data")


def _render_here(stack: str, project: Path, out: Path) -> None:
    render(load_stack(stack, project), stack, out)


def _render_at(stack: str, tree: Path, out: Path) -> str | None:
    """Render the stack of the unpacked tree; None when it has no such stack file.

    With the project's code in the tree, that code renders it (a change of the code
    shows in the diff); otherwise the installed code does."""
    if not stack_file(stack, tree).is_file():
        return None
    # The command line as a module (rollout/cli.py) or, since the layers, as a package.
    if (tree / "rollout" / "cli.py").is_file() or (tree / "rollout" / "cli" / "__main__.py").is_file():
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run(
            [sys.executable, "-m", "rollout.cli", "--project", str(tree), "render", "--stack", stack, "--out", str(out)],
            cwd=tree, env=env, capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise ConfigError([f"at the base: {line}" for line in (result.stderr.strip() or "render failed").splitlines()])
        return "its own code"
    _render_here(stack, tree, out)
    return "the installed code"


def _files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {
        str(path.relative_to(folder)): path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _printable(text: str) -> bool:
    return printable(text) == text


def _lines(text: str, escape_all: bool) -> list[str]:
    """The lines of a rendered file as the diff shows them: split at ``\\n`` only
    (not at the carriage returns, form feeds and line separators str.splitlines
    also ends a line at), each made printable (rollout.model.errors.printable), so a
    value in a rendered file shows escaped and cannot forge a line of the diff.

    With ``escape_all`` (either side of the diff holds something to escape) every
    backslash is doubled, also on lines with nothing else to escape: two lines
    that differ are never shown alike (the escape character shows as ``\\x1b``,
    the four characters ``\\x1b`` as ``\\\\x1b``)."""

    def shown(line: str) -> str:
        escaped = printable(line)
        return escaped if escaped != line or not escape_all else line.replace("\\", "\\\\")

    parts = text.split("\n")
    lines = [shown(part) + "\n" for part in parts[:-1]]
    return lines + ([shown(parts[-1])] if parts[-1] else [])


def diff_stack(stack: str, project: Path, base: str | None = None) -> tuple[str, bool]:
    """The unified diff of every rendered file of ``stack``, REF against the working tree.

    Returns the text and whether anything differs.
    """
    ref = base or "HEAD"
    with tempfile.TemporaryDirectory(prefix="rollout-diff-") as scratch:
        root = Path(scratch)
        tree, old_out, new_out = root / "base", root / "old", root / "new"
        tree.mkdir()
        _archive(project, ref, tree)
        _render_at(stack, tree, old_out)
        _render_here(stack, project, new_out)
        old, new = _files(old_out), _files(new_out)
    chunks = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        escape_all = not (_printable((before or "").replace("\n", "")) and _printable((after or "").replace("\n", "")))
        lines = difflib.unified_diff(
            _lines(before or "", escape_all),
            _lines(after or "", escape_all),
            fromfile=f"a/{printable(path)}" if before is not None else "/dev/null",
            tofile=f"b/{printable(path)}" if after is not None else "/dev/null",
        )
        chunks.append("".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines))
    return "".join(chunks), bool(chunks)


def cmd_diff(args: argparse.Namespace) -> int:
    text, changed = diff_stack(args.stack, args.project, args.base)
    sys.stdout.write(printable_lines(text))
    return EXIT_REFUSED if changed else EXIT_OK
