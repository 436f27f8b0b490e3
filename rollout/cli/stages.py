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
from rollout.cli.output import EXIT_OK, EXIT_REFUSED, say, write_edit
from rollout.gates.check import load_evidence
from rollout.gates.confidence import INCONCLUSIVE, VERDICT_WORDS
from rollout.gates.judge import CANARY_WITHIN_BUDGET
from rollout.gates.edits import (
    Edit, Refused, acted_on, advance_edit, apply, judge_advance, promote_edit, release_edit, rollback_edit,
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


def units(config, names: list[str]) -> list[list[str]]:
    """The services acted on, in the units that move together: a release group's members, else one each."""
    found: list[list[str]] = []
    for name in names:
        group = config.release_group_of(name)
        members = [s.name for s in config.services if group is not None and s.name in config.release_groups[group]]
        unit = members or [name]
        if unit not in found:
            found.append(unit)
    return found


def _advance(args: argparse.Namespace, evidence: dict | None) -> int:
    """Each service acted on (with its release group) is judged on its own: with ``--all-services`` the
    ones the gates allow advance (in one edit) and the others are reported, so a service without data
    holds no other up."""
    config = load_stack(args.stack, args.project)
    now = now_of(args)
    path = stack_file(args.stack, args.project)
    names = acted_on(config, args.service, args.all_services, "advance")
    allowed, refused, notes, state = [], [], [], None
    # With --all-services a release group's members are judged together; one service alone otherwise.
    found_units = units(config, names) if args.all_services else [[name] for name in names]
    for unit in found_units:
        advance = advance_edit(config, args.stack, unit, args.reason, now)
        state = advance.state
        for line in advance.skipped:
            say(line, file=sys.stderr)
        if not advance.entries:
            continue
        verdict = judge_advance(advance, config, args.stack, args.project, now, evidence)
        notes += [note for note in verdict.notes if note not in notes]
        (refused if verdict.violations else allowed).append((advance, verdict))
    for note in notes:
        say(f"note: {note}", file=sys.stderr)
    if not allowed and not refused:
        say("rollout: nothing to advance", file=sys.stderr)
        return EXIT_REFUSED
    several = len(found_units) > 1
    for advance, verdict in refused:
        if several:
            say(f"{', '.join(e.service for e in advance.entries)}: not advanced:", file=sys.stderr)
        for violation in verdict.violations:
            say(violation, file=sys.stderr)
    entries = [entry for advance, _ in allowed for entry in advance.entries]
    if not allowed:
        violations = [line for _, verdict in refused for line in verdict.violations]
        if args.dry_run:
            _print_dry_run(path, [e for a, _ in refused for e in a.entries], state,
                           f"refused: {len(violations)} gate violation(s)")
            return EXIT_REFUSED
        say(f"rollout: advance {_refused_or_held(violations)} by the gates; {path.name} is unchanged", file=sys.stderr)
        return EXIT_REFUSED
    if evidence is not None:
        shown = "gates pass"
    else:
        say("note: without --evidence the canary's budget is judged later, by `rollout check` and the policy pack",
            file=sys.stderr)
        shown = "gates pass, but for the canary's budget (no evidence)"
    if refused:
        shown += f" for {', '.join(e.service for e in entries)}; not advanced: " + \
            ", ".join(e.service for a, _ in refused for e in a.entries)
    if args.dry_run:
        _print_dry_run(path, entries, state, shown)
        return EXIT_OK
    for note in apply(path, args.project, Edit(entries, [], [])):
        say(note, file=sys.stderr)
    for entry in entries:
        before = state["services"][entry.service]["weight"]
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
    """``rollout release`` / ``rollout promote`` under the stack file's lock (rollout.gates.edits): the
    service named, a release group's members together (``--group``), or with ``--all-services`` each
    service of no group (those refused are reported)."""
    from rollout.cli.fleet import group_edit

    config = load_stack(args.stack, args.project)
    now = now_of(args)
    path = stack_file(args.stack, args.project)
    reason = args.reason.strip() if args.reason and args.reason.strip() else None
    evidence = load_evidence(Path(args.evidence)) if getattr(args, "evidence", None) else None
    edits, refusals = [], []
    if args.all_services and args.group is not None:
        raise UsageError("--group and --all-services: give one of them")
    try:
        # A release group's members together (--group); a member alone is refused (rollout.gates.groupedits).
        group = None if args.all_services else group_edit(args, config, command, reason, now)
    except Refused as refused:
        group, refusals = None, [refused]
    if group is not None:
        edits.append(group)
    elif not refusals:
        names = acted_on(config, args.service, args.all_services, command)
        if args.all_services:
            for name in [n for n in names if config.release_group_of(n) is not None]:
                say(f"{name}: in release group {config.release_group_of(name)}: `rollout {command} --group` takes it",
                    file=sys.stderr)
            names = [n for n in names if config.release_group_of(n) is None]
        for service in names:
            try:
                if command == "release":
                    edits.append(release_edit(config, args.stack, service, args.image[0], reason, now))
                else:
                    edits.append(promote_edit(config, args.stack, service, reason, now, args.project, evidence))
            except Refused as refused:
                refusals.append(refused)
    for refused in refusals:
        for line in refused.lines:
            say(f"rollout: {line}" if not line.startswith("[") else line, file=sys.stderr)
    if not edits:
        say(f"rollout: {command} refused; {path.name} is unchanged", file=sys.stderr)
        return EXIT_REFUSED
    edit = Edit([e for x in edits for e in x.entries], [v for x in edits for v in x.values],
                [line for x in edits for line in x.lines])
    if command == "promote" and evidence is None:
        say("note: without --evidence the canary's budget over the final stage is judged later, by "
            "`rollout check` and the policy pack", file=sys.stderr)
    return write_edit(path, args.project, edit, command, getattr(args, "dry_run", False), verdict="allowed")


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
    rollback = rollback_edit(path, args.project, args.stack, args.service, reason, now_of(args), args.all_services)
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
