"""What every command shares on the way out: escaped lines, exit codes, and one
line on stderr per error instead of a traceback.

Exit codes shared by every command: 0 success, 1 a refusal (a mandatory policy
violation, an unhealthy verification, a stack file another edit holds locked),
2 bad input (a broken stack file, wrong arguments).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rollout.load.files import write_atomic
from rollout.model.errors import Busy, ConfigError, UsageError, printable

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
#: Ctrl-C, as a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED = 130
#: A bug: an error no command expects.
EXIT_INTERNAL = 3


def say(*parts: object, file=None) -> None:
    """print(), one line per call: what a path, a name, a reason or a server's text
    holds that is not printable is shown escaped (rollout.model.errors.printable)."""
    print(*(printable(part) for part in parts), file=file)


def write_edit(path: Path, project: Path, edit, command: str, dry_run: bool, verdict: str | None = None) -> int:
    """Write a stack-file ``edit`` (rollout.gates.edits.Edit) and print its lines, or with
    ``dry_run`` print what would be written (and the ``verdict``) and write nothing."""
    from rollout.gates.edits import apply

    if dry_run:
        say(f"dry run: {path.name} is unchanged; this {command} would be written:")
        for line in edit.lines:
            say(f"  {line}")
        if verdict is not None:
            say(f"verdict: {verdict}")
        return EXIT_OK
    for note in apply(path, project, edit):
        say(note, file=sys.stderr)
    for line in edit.lines:
        say(line)
    return EXIT_OK


def write_file(out: Path, text: str, option: str) -> None:
    """Write ``text`` to ``out`` whole or not at all: a temporary file beside it, renamed
    (rollout.load.files.write_atomic: created exclusively, under a name nobody can predict).

    A symbolic link is followed (its target is replaced, the link kept); a device
    or a pipe (``/dev/stdout``) is written to directly, never replaced.
    """
    try:
        if out.is_dir():
            raise UsageError(f"{option} {out}: is a folder; name a file")
        if out.exists() and not out.resolve().is_file():
            with out.open("w", encoding="utf-8") as stream:
                stream.write(text)
            return
        target = out.resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text)
    except OSError as err:
        raise UsageError(f"{option} {out}: cannot be written: {err.strerror or err}") from None


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a file descriptor (a test's capture)


def expected(err: BaseException) -> bool:
    """An error with a message for the user, not a bug (:func:`report_error` says which code)."""
    return isinstance(err, (ConfigError, UsageError, Busy, KeyboardInterrupt, OSError))


def report_error(err: BaseException) -> int:
    """The error a command raised as one message on stderr; returns the exit code."""
    if isinstance(err, ConfigError):
        for line in err.problems:
            say(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(err, UsageError):
        say(f"rollout: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(err, Busy):
        say(f"rollout: {err}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, BrokenPipeError):
        # The reader went away (`rollout status | head -1`): nothing more can be
        # shown. Point stdout at /dev/null so the exit's own flush stays quiet.
        _quiet_stdout()
        say("rollout: standard output was closed before everything was written", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(err, OSError):
        # The environment, not a bug: a full disk, a read-only file system, an
        # immutable file, a name too long, a permission.
        where = f"{err.filename}: " if err.filename else ""
        say(f"rollout: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_REFUSED
    say(f"rollout: internal error: {type(err).__name__}: {err} (set ROLLOUT_DEBUG=1 for a traceback)", file=sys.stderr)
    return EXIT_INTERNAL


__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_REFUSED", "expected", "report_error", "say", "write_file"]
