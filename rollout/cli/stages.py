"""The commands that edit a stack file's history, each under the file's lock:
``rollout advance``, ``rollout rollback``, ``rollout release`` and ``rollout promote``.

What to write and whether the gates allow it is decided in rollout.gates.edits;
here the arguments are read, the verdict printed and the edit written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollout.cli.clock import now_of
from rollout.cli.output import EXIT_OK, EXIT_REFUSED, say
from rollout.gates.check import load_evidence
from rollout.gates.confidence import INCONCLUSIVE, VERDICT_WORDS
from rollout.gates.judge import CANARY_WITHIN_BUDGET
from rollout.gates.edits import (
    Edit, Refused, advance_edit, apply, judge_advance, one_service, promote_edit, release_edit, rollback_edit,
)
from rollout.load.clock import tolerate_future
from rollout.load.stack import load_stack, stack_file
from rollout.load.stackfile import locked
from rollout.model.errors import UsageError, printable_json
from rollout.model.time import format_time


def cmd_advance(args: argparse.Namespace) -> int:
    # The evidence is read and checked before the lock is taken: it may be a FIFO or
    # a slow process substitution, and a rollback must never wait for it.
    evidence = load_evidence(Path(args.evidence)) if args.evidence else None
    # The state is read under the lock: an edit that finished meanwhile counts.
    with locked(stack_file(args.stack, args.project), args.project):
        return _advance(args, evidence)


def _advance(args: argparse.Namespace, evidence: dict | None) -> int:
    config = load_stack(args.stack, args.project)
    now = now_of(args)
    advance = advance_edit(config, args.stack, args.service, args.reason, now)
    for line in advance.skipped:
        say(line, file=sys.stderr)
    if not advance.entries:
        say("rollout: nothing to advance", file=sys.stderr)
        return EXIT_REFUSED
    path = stack_file(args.stack, args.project)
    verdict = judge_advance(advance, config, args.stack, args.project, now, evidence)
    for note in verdict.notes:
        say(f"note: {note}", file=sys.stderr)
    if verdict.violations:
        for violation in verdict.violations:
            say(violation, file=sys.stderr)
        if args.dry_run:
            _print_dry_run(path, advance.entries, advance.state, f"refused: {len(verdict.violations)} gate violation(s)")
            return EXIT_REFUSED
        say(f"rollout: advance {_refused_or_held(verdict.violations)} by the gates; {path.name} is unchanged",
            file=sys.stderr)
        return EXIT_REFUSED
    if evidence is not None:
        shown = "gates pass"
    else:
        say("note: without --evidence the canary's budget is judged later, by `rollout check` and the policy pack",
            file=sys.stderr)
        shown = "gates pass, but for the canary's budget (no evidence)"
    if args.dry_run:
        _print_dry_run(path, advance.entries, advance.state, shown)
        return EXIT_OK
    for note in apply(path, args.project, Edit(advance.entries, [], [])):
        say(note, file=sys.stderr)
    for entry in advance.entries:
        before = advance.state["services"][entry.service]["weight"]
        say(f"{entry.service}: {before}% -> {entry.weight}% from {format_time(entry.started_at)}")
    return EXIT_OK


def _refused_or_held(violations: list[str]) -> str:
    """``held`` when every refusal is a traffic measure the evidence cannot judge yet, else ``refused``."""
    held = all(f"] {CANARY_WITHIN_BUDGET} (" in line and VERDICT_WORDS[INCONCLUSIVE] in line for line in violations)
    return "held (inconclusive: the stage keeps soaking)" if violations and held else "refused"


def cmd_release(args: argparse.Namespace) -> int:
    with locked(stack_file(args.stack, args.project), args.project):
        return _edit(args, "release")


def cmd_promote(args: argparse.Namespace) -> int:
    with locked(stack_file(args.stack, args.project), args.project):
        return _edit(args, "promote")


def _edit(args: argparse.Namespace, command: str) -> int:
    """``rollout release`` / ``rollout promote`` under the stack file's lock (rollout.gates.edits)."""
    from rollout.cli.fleet import group_edit

    config = load_stack(args.stack, args.project)
    now = now_of(args)
    path = stack_file(args.stack, args.project)
    reason = args.reason.strip() if args.reason and args.reason.strip() else None
    try:
        # A release group's members together (--group); a member alone is refused (rollout.gates.groupedits).
        edit = group_edit(args, config, command, reason, now)
        if edit is None and command == "release":
            edit = release_edit(config, args.stack, one_service(config, args.service, command), args.image[0], reason,
                                now)
        elif edit is None:
            edit = promote_edit(config, args.stack, one_service(config, args.service, command), reason, now)
    except Refused as refused:
        for line in refused.lines:
            say(f"rollout: {line}" if not line.startswith("[") else line, file=sys.stderr)
        say(f"rollout: {command} refused; {path.name} is unchanged", file=sys.stderr)
        return EXIT_REFUSED
    if getattr(args, "dry_run", False):
        say(f"dry run: {path.name} is unchanged; this {command} would be written:")
        for line in edit.lines:
            say(f"  {line}")
        say("verdict: allowed")
        return EXIT_OK
    for note in apply(path, args.project, edit):
        say(note, file=sys.stderr)
    for line in edit.lines:
        say(line)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise UsageError("--reason must say why (it is recorded in the history)")
    # A rollback is never refused: not even by an entry a machine with a fast clock wrote.
    tolerate_future(True)
    try:
        with locked(stack_file(args.stack, args.project), args.project):
            return _rollback(args)
    finally:
        tolerate_future(False)


def _rollback(args: argparse.Namespace) -> int:
    reason = args.reason.strip()
    path = stack_file(args.stack, args.project)
    rollback = rollback_edit(path, args.project, args.stack, args.service, reason, now_of(args))
    for note in rollback.notes:
        print(note, file=sys.stderr)
    if args.dry_run:
        _print_dry_run(path, rollback.entries, rollback.state(), "a rollback is never refused")
        return EXIT_OK
    for note in apply(path, args.project, Edit(rollback.entries, [], [])):
        say(note, file=sys.stderr)
    for entry in rollback.entries:
        before = rollback.config.service(entry.service).rollout.weight
        say(f"{entry.service}: {before}% -> 0% from {format_time(entry.started_at)} ({reason})")
    return EXIT_OK


def _print_dry_run(path: Path, entries: list, state: dict, verdict: str) -> None:
    """``--dry-run``: the history entries that would be appended, and the gates' verdict; nothing written."""
    say(f"dry run: {path.name} is unchanged; this would be appended:")
    for entry in entries:
        before = state["services"][entry.service]["weight"]
        say(f"  {entry.service}: {before}% -> {entry.weight}%")
        say(f"    - weight: {entry.weight}")
        say(f'      startedAt: "{format_time(entry.started_at)}"')
        if entry.reason:
            print(f"      reason: {printable_json(entry.reason)}")
    say(f"verdict: {verdict}")
