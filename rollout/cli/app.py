"""The ``rollout`` command line.

Exit codes shared by every command: 0 success, 1 a refusal (a mandatory policy
violation, an unhealthy verification, a stack file another edit holds locked),
2 bad input (a broken stack file, wrong arguments). Errors are one message on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Callable

from rollout.cli.clock import add_now_argument, instant_arg
from rollout.model.time import FORMAT_HINT
from rollout.model.errors import Busy, ConfigError, UsageError, printable, printable_json, printable_lines
from rollout.load.files import write_atomic
from rollout.load.stack import load_stack, project_root, stack_file

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def _say(*parts: object, file=None) -> None:
    """print(), one line per call: what a path, a name, a reason or a server's text
    holds that is not printable is shown escaped (rollout.model.errors.printable)."""
    print(*(printable(part) for part in parts), file=file)


def find_project(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding Pulumi.yaml; else the package's own."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "stacks").is_dir():
            return folder
    return project_root()


class _Parser(argparse.ArgumentParser):
    """argparse, with a refused command line as one line on stderr (exit 2), not usage plus the error."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        _say(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _stack_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", "-s", required=True, type=_stack_name, help="stack name: stacks/Pulumi.<stack>.yaml"
    )


def _stack_name(text: str) -> str:
    # Pulumi's rule (rollout.model.config.STACK_NAME). The name is also part of a file
    # name under stacks/, so it keeps out separators ("../x"), control characters
    # and names longer than a file name may be.
    from rollout.model.config import STACK_NAME

    if not STACK_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text[:100]!r} is not a stack name: 1 to 100 letters, digits, '-', '_' or '.'"
        )
    return text


def _project_folder(text: str) -> Path:
    try:
        is_folder = bool(text) and "\x00" not in text and Path(text).is_dir()
    except OSError:  # a name too long for the file system
        is_folder = False
    if not is_folder:
        raise argparse.ArgumentTypeError(f"{text[:200]!r} is not a folder")
    return Path(text)


def _given(text: str) -> str:
    """A path or a git ref. Empty is refused rather than read as "not given": an
    unset variable in `--out "$DIR"` must not silently mean the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("is empty")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text[:200]!r} holds a NUL byte")
    return text


def _base_url(text: str) -> str:
    """An http(s) URL with a host. The value is not repeated in the message: a URL
    may carry credentials."""
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port  # a port that is not a number, or out of range, raises here
    except ValueError:
        parts = None
    printable = all(32 < ord(c) != 127 for c in text)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not printable:
        raise argparse.ArgumentTypeError("not an http(s) URL with a host, e.g. http://127.0.0.1:9090")
    return text


def _wait_seconds(text: str) -> float:
    """--wait: 0 is allowed (no wait); NaN or infinity would wait forever."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 <= value < 86400):
        raise argparse.ArgumentTypeError(f"{text[:100]!r}: seconds must be 0 or more and less than a day")
    return value


def _utf8(text: str) -> str:
    """Text that is valid UTF-8. A byte that is not (a shell's $'\\xff') reaches Python
    as a lone surrogate: flagd's hash (mmh3) crashes the process on one, and no
    stack file can record one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not valid UTF-8") from None
    return text


def _image_arg(text: str) -> str:
    """--image: one container image reference in the distribution grammar (rollout.model.images)."""
    from rollout.model.images import ImageRefError, parse  # only `release` needs the parser

    _utf8(text)
    try:
        parse(text)
    except ImageRefError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _release_image_arg(text: str) -> str:
    """``release --image``: an image reference, or with ``--group`` SERVICE=IMAGE (the service a DNS label)."""
    service, sep, image = text.partition("=")
    if sep and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", service):
        return f"{service}={_image_arg(image)}"
    return _image_arg(text)


def _is_file(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a path longer than the file system allows
        return False


def cmd_render(args: argparse.Namespace) -> int:
    from rollout.build.render import render

    config = load_stack(args.stack, args.project)
    try:
        written = render(config, args.stack, Path(args.out))
    except OSError as err:
        # --out names a file, a folder below a file, or a place that cannot be written.
        raise UsageError(f"--out {args.out}: cannot write {err.filename or args.out}: {err.strerror or err}") from None
    for path in written:
        _say(path)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    import pulumi

    from rollout.engine.harness import run_program

    from rollout.gates.advice import warnings

    config = load_stack(args.stack, args.project)
    try:
        run = run_program(args.stack, args.project)
    except pulumi.RunError as err:
        raise ConfigError(str(err).splitlines()) from None
    _say(f"stack {args.stack}: config valid; {len(run.resources)} resources declared offline")
    for warning in warnings(config, args.stack):
        _say(f"warning: {warning}")
    report = gate_report_of(args)
    # Mandatory in production: beside an advance, the stricter of the deployed and the proposed tier
    # (a lower tier lands in a change of its own, listed as a loosening).
    resources = check_resource_policies(args, run, report.deployed_tier if report.advancing else None)
    gates = check_gates(args, report)
    return EXIT_REFUSED if EXIT_REFUSED in (resources, gates) else EXIT_OK


def check_resource_policies(args: argparse.Namespace, run, deployed_tier: str | None = None) -> int:
    """The pack's resource policies over the declared resources: mandatory in production."""
    from rollout.cli.clock import now_of
    from rollout.engine.policy_runner import resource_violations

    violations = resource_violations(run, now_of(args), deployed_tier)
    for v in violations:
        level = "mandatory" if v.mandatory else "advisory"
        _say(f"[{level}] {v.policy} ({v.resource}): {v.message}")
    mandatory = sum(v.mandatory for v in violations)
    _say(
        f"stack {args.stack}: resource policies: {mandatory} mandatory, "
        f"{len(violations) - mandatory} advisory violation(s)"
    )
    return EXIT_REFUSED if mandatory else EXIT_OK


def gate_report_of(args: argparse.Namespace):
    """The gates' report for ``rollout check`` (rollout.gates.check), against what is deployed."""
    from rollout.gates.check import gate_report, load_evidence
    from rollout.cli.clock import now_of

    evidence = load_evidence(Path(args.evidence)) if args.evidence else None
    deployed_file = Path(args.deployed_state) if getattr(args, "deployed_state", None) else None
    return gate_report(args.stack, args.project, evidence=evidence, base=args.base, now=now_of(args),
                       deployed_file=deployed_file)


def check_gates(args: argparse.Namespace, report=None) -> int:
    """The rollout gates of ``rollout check``: print each loosening and violation, exit 1 on any violation."""
    from rollout.gates.check import format_violation

    report = report or gate_report_of(args)
    for note in report.notes:
        _say(f"note: {note}")
    for loosening in report.loosens:
        _say(f"loosens: {loosening}")
    for override in report.overrides:
        _say(f"override: {override}")
    for violation in report.violations:
        _say(format_violation(violation))
    advancing = ", ".join(report.advancing) or "none"
    verdict = f"{len(report.violations)} gate violation(s)" if report.refused else "gates pass"
    _say(f"stack {args.stack}: advancing: {advancing} (deployed: {report.deployed_source}); {verdict}")
    return EXIT_REFUSED if report.refused else EXIT_OK


def _services(config, name: str | None) -> list[str]:
    names = [service.name for service in config.services]
    if name is None:
        return names
    if name not in names:
        raise UsageError(f"--service {name}: not a service of this stack; services: {', '.join(names)}")
    return [name]


def cmd_status(args: argparse.Namespace) -> int:
    from rollout.cli.clock import now_of

    now = now_of(args)
    if args.release is not None or args.by_release:
        from rollout.cli.fleet import status_fleet

        return status_fleet(args, now)
    if args.all:
        return _status_all(args, now)
    if args.stack is None:
        raise UsageError("status: name a stack with --stack, or pass --all")
    return _status_stack(args, now)


def _status_stack(args: argparse.Namespace, now) -> int:
    from rollout.model.durations import format_duration
    from rollout.cli.status import rows, upstream_state
    from rollout.model.time import format_time

    from rollout.gates.fleetread import FleetReader

    reader = FleetReader(args.project, now, deployed_from_files=True)
    config = reader.config(args.stack)
    upstream = upstream_state(config, args.project, now, reader)
    found = rows(config, args.stack, now, upstream, _services(config, args.service), reader)
    safety = sorted(config.safety_flags_on())
    if args.format == "json":
        import json

        services = {row.service: row.as_json() for row in found}
        print(json.dumps({"stack": args.stack, "now": format_time(now), "safetyFlagsOn": safety, "services": services},
                         indent=2, sort_keys=True))
        return EXIT_OK
    for st in found:
        soak = f", soak {format_duration(st.soak)}" if st.soak is not None else ""
        _say(
            f"{st.service}: {st.weight}% (stage {st.stage_number} of {st.stage_count}, plan {st.plan}) since "
            f"{format_time(st.stage_started_at)}, {format_duration(st.time_in_stage)} in stage{soak}"
        )
        _say(f"  release: canary {st.canary_image} ({_pods(st.canary_replicas)}), "
              f"stable {st.stable_image} ({_pods(st.stable_replicas)})")
        if st.upstream is not None:
            _say(f"  upstream: {st.upstream}")
        if st.next_weight is not None:
            served = st.earliest_advance_at is not None and st.earliest_advance_at <= now
            when = "now" if served else f"in {format_duration(st.earliest_advance_at - now)}"
            _say(f"  next stage: {st.next_weight}%, earliest advance {format_time(st.earliest_advance_at)} ({when})")
            for wait in st.waits:
                if wait.kind == "upstream":
                    _say(f"  waits for {', '.join(config.upstreams)}: {wait.message}")
                elif wait.kind in ("group", "limit", "freeze", "halt"):
                    _say(f"  waits for the {wait.kind}: {wait.message}")
        elif st.complete:
            _say(f"  complete since {format_time(st.completes_at)}")
        elif st.completes_at is not None:
            _say(f"  final stage: complete at {format_time(st.completes_at)} (in {format_duration(st.completes_at - now)})")
    for flag in safety:
        _say(f"safety flag {flag} is on: no stage may be entered until it is off")
    return EXIT_OK


def _status_all(args: argparse.Namespace, now) -> int:
    """``rollout status --all``: every stack and service in one table."""
    from rollout.cli.status import markdown_table, rows, stack_names, text_table, upstream_state
    from rollout.model.time import format_time

    if args.stack is not None or args.service is not None:
        raise UsageError("status --all shows every stack and service; leave out --stack and --service")
    from rollout.gates.fleetread import FleetReader

    # One reader for the command: each stack file is loaded once, whichever stack asks about it.
    reader = FleetReader(args.project, now, deployed_from_files=True)
    found, broken = [], []
    for stack in stack_names(args.project):
        try:
            config = reader.config(stack)
            found += rows(config, stack, now, upstream_state(config, args.project, now, reader), reader=reader)
        except ConfigError as err:
            broken.append((stack, err.problems))
    if args.format == "json":
        import json

        from rollout.cli.fleet import fleet_json

        print(json.dumps({"now": format_time(now), "rows": [r.as_json() for r in found],
                          "broken": {stack: problems for stack, problems in broken},
                          "releases": fleet_json(reader, now)}, indent=2, sort_keys=True))
    elif args.format == "markdown":
        sys.stdout.write(printable_lines(markdown_table(found, now)))
    else:
        _say(f"as at {format_time(now)}")
        sys.stdout.write(printable_lines(text_table(found, now)))
    for stack, problems in broken:
        for line in problems:
            _say(line, file=sys.stderr)
    return EXIT_BAD_INPUT if broken else EXIT_OK


def _pods(count) -> str:
    return f"{count} replica{'' if count == 1 else 's'}"


def _status_json(config, args: argparse.Namespace, state: dict, upstream: dict | None, now) -> int:
    """``rollout status --format json``: what the Stage watch workflow reads."""
    import json

    from rollout.gates.judge import STAGING_FIRST, judge
    from rollout.gates.edits import upstream_progress
    from rollout.model.stored import transition_from_json
    from rollout.model.state import status, with_entry
    from rollout.model.time import format_time

    services = {}
    for name in _services(config, args.service):
        st = status(state["services"][name], now)
        waits = []
        if st.next_weight is not None and upstream is not None:
            ahead = with_entry(state, name, st.next_weight, now, None, now)
            waits = [v.message for v in judge(transition_from_json(ahead, state, None, upstream, now))
                     if v.policy == STAGING_FIRST]
        services[name] = {
            "weight": st.weight,
            "nextWeight": st.next_weight,
            "earliestAdvance": format_time(st.earliest_advance_at) if st.earliest_advance_at else None,
            "complete": st.complete,
            "waitsFor": waits,
            "release": st.canary_image,
            "stableImage": st.stable_image,
            "canaryReplicas": st.canary_replicas,
            "upstream": upstream_progress(upstream, name, st.canary_image, now) if upstream is not None else None,
            # The soak is served, upstream allows it and no safety flag is on;
            # the canary's SLOs are judged on the pull request, with evidence.
            "mayAdvance": st.next_weight is not None and st.soak_served and not waits and not state["safetyFlagsOn"],
        }
    print(json.dumps({"stack": args.stack, "safetyFlagsOn": state["safetyFlagsOn"], "services": services}, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_advance(args: argparse.Namespace) -> int:
    from rollout.gates.check import load_evidence
    from rollout.load.stackfile import locked

    # The evidence is read and checked before the lock is taken: it may be a FIFO or
    # a slow process substitution, and a rollback must never wait for it.
    evidence = load_evidence(Path(args.evidence)) if args.evidence else None
    # The state is read under the lock: an edit that finished meanwhile counts.
    with locked(stack_file(args.stack, args.project), args.project):
        return _advance(args, evidence)


def _advance(args: argparse.Namespace, evidence: dict | None) -> int:
    from rollout.gates.check import format_violation, gate_report
    from rollout.gates.judge import CANARY_WITHIN_BUDGET
    from rollout.cli.clock import now_of
    from rollout.load.stackfile import NewEntry, append_history
    from rollout.model.state import rollout_state, with_entry
    from rollout.model.time import format_time, not_before

    config = load_stack(args.stack, args.project)
    now = now_of(args)
    state = rollout_state(config, args.stack, now)
    new_state, entries = state, []
    for name in _services(config, args.service):
        service = state["services"][name]
        if service["nextWeight"] is None:
            _say(f"{name}: at the final stage of plan {service['plan']} ({service['weight']}%); nothing to advance",
                  file=sys.stderr)
            continue
        # Never before the current entry: the history is in time order.
        at = max(now, not_before(config.service(name).rollout.current.started_at))
        entries.append(NewEntry(name, service["nextWeight"], at, args.reason, release=service["canary"]["image"],
                                plan=service["plan"]))
        new_state = with_entry(new_state, name, service["nextWeight"], at, args.reason, now)
    if not entries:
        _say("rollout: nothing to advance", file=sys.stderr)
        return EXIT_REFUSED
    path = stack_file(args.stack, args.project)
    # Judged against what is deployed (rollout.gates.deployed), never the working tree itself.
    report = gate_report(args.stack, args.project, evidence=evidence, now=now, config=config, new_state=new_state)
    for note in report.notes:
        _say(f"note: {note}", file=sys.stderr)
    # Without evidence only the canary's budget waits (`rollout check` and the policy pack judge it).
    refused = [v for v in report.violations if evidence is not None or v.policy != CANARY_WITHIN_BUDGET]
    if refused:
        for violation in refused:
            _say(format_violation(violation), file=sys.stderr)
        if args.dry_run:
            _print_dry_run(path, entries, state, f"refused: {len(refused)} gate violation(s)")
            return EXIT_REFUSED
        _say(f"rollout: advance refused by the gates; {path.name} is unchanged", file=sys.stderr)
        return EXIT_REFUSED
    if evidence is not None:
        verdict = "gates pass"
    else:
        _say("note: without --evidence the canary's budget is judged later, by `rollout check` and the policy pack",
              file=sys.stderr)
        verdict = "gates pass, but for the canary's budget (no evidence)"
    if args.dry_run:
        _print_dry_run(path, entries, state, verdict)
        return EXIT_OK
    if append_history(path, entries, args.project):
        _say(f"note: {path.name} could not be edited line by line; it was rewritten as a whole (comments kept)", file=sys.stderr)
    for entry in entries:
        before = state["services"][entry.service]["weight"]
        _say(f"{entry.service}: {before}% -> {entry.weight}% from {format_time(entry.started_at)}")
    return EXIT_OK


def _now(args: argparse.Namespace):
    """The one clock of a command: its ``--now`` (rollout.cli.clock), else the current time."""
    from rollout.cli.clock import now_of

    return now_of(args)


def cmd_release(args: argparse.Namespace) -> int:
    from rollout.load.stackfile import locked

    with locked(stack_file(args.stack, args.project), args.project):
        return _edit(args, "release")


def cmd_promote(args: argparse.Namespace) -> int:
    from rollout.load.stackfile import locked

    with locked(stack_file(args.stack, args.project), args.project):
        return _edit(args, "promote")


def _edit(args: argparse.Namespace, command: str) -> int:
    """``rollout release`` / ``rollout promote`` under the stack file's lock (rollout.gates.edits)."""
    from rollout.gates.edits import Refused, apply, one_service, promote_edit, release_edit

    from rollout.cli.fleet import group_edit

    config = load_stack(args.stack, args.project)
    now = _now(args)
    path = stack_file(args.stack, args.project)
    reason = args.reason.strip() if args.reason and args.reason.strip() else None
    try:
        edit = group_edit(args, config, command, reason, now)
        if edit is not None:
            pass  # the release group's edit (rollout.gates.groupedits)
        elif command == "release":
            edit = release_edit(config, args.stack, one_service(config, args.service, command), args.image[0], reason,
                                now)
        else:
            edit = promote_edit(config, args.stack, one_service(config, args.service, command), reason, now)
    except Refused as refused:
        for line in refused.lines:
            _say(f"rollout: {line}" if not line.startswith("[") else line, file=sys.stderr)
        _say(f"rollout: {command} refused; {path.name} is unchanged", file=sys.stderr)
        return EXIT_REFUSED
    if getattr(args, "dry_run", False):
        _say(f"dry run: {path.name} is unchanged; this {command} would be written:")
        for line in edit.lines:
            _say(f"  {line}")
        _say("verdict: allowed")
        return EXIT_OK
    for note in apply(path, args.project, edit):
        _say(note, file=sys.stderr)
    for line in edit.lines:
        _say(line)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from rollout.load.stackfile import locked

    if not args.reason.strip():
        raise UsageError("--reason must say why (it is recorded in the history)")
    from rollout.load.clock import tolerate_future

    # A rollback is never refused: not even by an entry a machine with a fast clock wrote.
    tolerate_future(True)
    try:
        with locked(stack_file(args.stack, args.project), args.project):
            return _rollback(args)
    finally:
        tolerate_future(False)


def _rollback(args: argparse.Namespace) -> int:
    from rollout.load.stack import display_path, read_stack_file, validate
    from rollout.cli.clock import now_of
    from rollout.load.stackfile import NewEntry, append_history
    from rollout.model.state import rollout_state
    from rollout.model.time import format_time, not_before

    reason = args.reason.strip()
    path = stack_file(args.stack, args.project)
    # Only the stack's own file is validated: a rollback never waits on another stack.
    config = validate(read_stack_file(path, args.project), display_path(path, args.project))
    now = now_of(args)
    from rollout.gates.groupedits import rollback_services

    entries = []
    # A rollback of one member of a release group is a rollback of the group.
    for name in rollback_services(config, args.service):
        service = config.service(name)
        current = service.rollout.current
        if current.started_at > now:
            print(f"note: {name}: the current stage starts at {format_time(current.started_at)}, after {format_time(now)} "
                  "(a clock ahead of this one wrote it); the rollback is recorded at that time, so the history stays "
                  "in order", file=sys.stderr)
        entries.append(NewEntry(name, 0, max(now, not_before(current.started_at)), reason, release=service.canary.image,
                                plan=service.rollout.plan))
    if args.dry_run:
        _print_dry_run(path, entries, rollout_state(config, args.stack, now), "a rollback is never refused")
        return EXIT_OK
    if append_history(path, entries, args.project):
        _say(f"note: {path.name} could not be edited line by line; it was rewritten as a whole (comments kept)", file=sys.stderr)
    for entry in entries:
        before = config.service(entry.service).rollout.weight
        _say(f"{entry.service}: {before}% -> 0% from {format_time(entry.started_at)} ({reason})")
    return EXIT_OK


def _print_dry_run(path: Path, entries: list, state: dict, verdict: str) -> None:
    """``--dry-run``: the history entries that would be appended, and the gates' verdict; nothing written."""
    from rollout.model.time import format_time

    _say(f"dry run: {path.name} is unchanged; this would be appended:")
    for entry in entries:
        before = state["services"][entry.service]["weight"]
        _say(f"  {entry.service}: {before}% -> {entry.weight}%")
        _say(f"    - weight: {entry.weight}")
        _say(f'      startedAt: "{format_time(entry.started_at)}"')
        if entry.reason:
            import json

            print(f"      reason: {printable_json(entry.reason)}")
    _say(f"verdict: {verdict}")


def cmd_evidence(args: argparse.Namespace) -> int:
    from rollout.gates.deployed import resolve_deployed, resolve_upstream
    from rollout.cli.clock import now_of
    from rollout.ops.evidence import PrometheusClient, collect, dumps, summary

    config = load_stack(args.stack, args.project)
    # --now: the evidence's window ends then (a past stage, reproducibly).
    now = now_of(args)
    # What is deployed: the one answer of rollout.gates.deployed (file, backend, git base, never).
    resolved = resolve_deployed(args.stack, args.project, now=now, base=args.base,
                                state_file=Path(args.deployed_state) if args.deployed_state else None)
    deployed, deployed_source = resolved.raw, resolved.source
    for note in resolved.notes:
        _say(f"note: {note}", file=sys.stderr)
    upstream, upstream_source = None, None
    upstream_name = (deployed or {}).get("promotesFrom") or config.promotes_from
    if upstream_name:
        found = resolve_upstream(upstream_name, args.project, now=now, base=args.base,
                                 state_file=Path(args.staging_state) if args.staging_state else None)
        upstream, upstream_source = found.raw, found.source
        for note in found.notes:
            _say(f"note: {note}", file=sys.stderr)
    live = None
    if args.live_routes:
        from rollout.load.files import read_json_file
        from rollout.ops.fastpath import live_routes

        document = read_json_file(Path(args.live_routes), "--live-routes")
        try:
            live = live_routes(document, [s.name for s in config.services])
        except (TypeError, ValueError) as err:
            raise UsageError(f"--live-routes {args.live_routes}: {err}") from None
    client = PrometheusClient(args.prometheus, retry=_retry(args))
    evidence = collect(config, args.stack, client, deployed, now, deployed_source, upstream, upstream_source)
    if live is not None:
        for name, record in evidence["services"].items():
            record["liveRoute"] = live.get(name)
    text = dumps(evidence)
    if args.out:
        out = Path(args.out)
        _write_file(out, text, "--out")
        for line in summary(evidence):
            _say(line)
        _say(f"evidence written to {out}")
    else:
        sys.stdout.write(text)
        for line in summary(evidence):
            _say(line, file=sys.stderr)
    return EXIT_OK


def _write_file(out: Path, text: str, option: str) -> None:
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


def cmd_flags(args: argparse.Namespace) -> int:
    import json

    from rollout.build.flag_values import as_env, resolve

    config = load_stack(args.stack, args.project)
    # --at/--now: flagd's own evaluation, with the time it reads ($flagd.timestamp) set then.
    values = resolve(config, args.stack, args.targeting_key, args.track, at=args.now)
    sys.stdout.write(as_env(values) if args.format == "env" else json.dumps(values, indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def _retry(args: argparse.Namespace):
    """The HTTP retry settings of --deadline and --timeout (rollout.ops.http)."""
    from rollout.ops.http import Retry

    return Retry(deadline_s=args.deadline, timeout_s=min(args.timeout, args.deadline))


def _http_args(parser: argparse.ArgumentParser) -> None:
    from rollout.ops.http import Retry

    parser.add_argument(
        "--deadline", type=_seconds, default=Retry.deadline_s,
        help=f"seconds each HTTP call may take, retries included (default {Retry.deadline_s:g}); "
        "connection failures, timeouts and 5xx answers are retried with backoff until then",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=Retry.timeout_s,
        help=f"seconds one try waits for an answer (default {Retry.timeout_s:g})",
    )


def _seconds(text: str) -> float:
    """--deadline, --timeout: more than 0 (a call needs some time), less than a day."""
    value = _wait_seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text[:100]!r}: seconds must be more than 0")
    return value


def cmd_plan(args: argparse.Namespace) -> int:
    from rollout.cli.clock import now_of
    from rollout.cli.status import upstream_state
    from rollout.cli.plan import mermaid, schedule, text
    from rollout.model.state import rollout_state

    now = now_of(args)
    if args.all:
        from rollout.cli.fleet import plan_fleet

        return plan_fleet(args, now)
    if args.stack is None:
        raise UsageError("plan: name a stack with --stack, or pass --all")
    config = load_stack(args.stack, args.project)
    state = rollout_state(config, args.stack, now)
    upstream = upstream_state(config, args.project, now)
    schedules = [schedule(state, name, now, upstream) for name in _services(config, args.service)]
    if args.format == "json":
        import json

        print(json.dumps({"stack": args.stack, "services": {s.service: s.as_json() for s in schedules}}, indent=2, sort_keys=True))
    elif args.format == "mermaid":
        sys.stdout.write(printable_lines(mermaid(schedules)))
    else:
        sys.stdout.write(printable_lines(text(schedules)))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from rollout.cli.diff import diff_stack

    text, changed = diff_stack(args.stack, args.project, args.base)
    sys.stdout.write(printable_lines(text))
    return EXIT_REFUSED if changed else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from rollout.ops.verify import verify

    config = load_stack(args.stack, args.project)
    report = verify(config, args.stack, args.prometheus, args.alertmanager, args.grafana, args.wait, _retry(args))
    for line in report.passed:
        _say(f"ok      {line}")
    for line in report.failed:
        _say(f"FAILED  {line}")
    verdict = "healthy" if not report.failed else f"{len(report.failed)} check(s) failed"
    _say(f"stack {args.stack}: {verdict}")
    return EXIT_REFUSED if report.failed else EXIT_OK


def _listen(text: str) -> tuple[str, int]:
    """--listen HOST:PORT (an IPv6 host in brackets)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def _repository(text: str) -> str:
    """--repository OWNER/NAME, as the forge spells them."""
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}", text):
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not OWNER/NAME, e.g. example/rollout")
    return text


def cmd_relay(args: argparse.Namespace) -> int:
    import asyncio

    from aiohttp import web

    from rollout.ops import serving
    from rollout.ops.http import Retry, public_url
    from rollout.ops.relay import Forge, Metrics, Relay, serve

    tokens = {}
    for name in ("ROLLOUT_RELAY_TOKEN", "GITHUB_TOKEN"):
        value = os.environ.get(name, "")
        if not value.strip():
            print(f"rollout: relay: {name} is not set: the relay needs it", file=sys.stderr)
            return EXIT_REFUSED
        tokens[name] = value.strip()
    limits = serving.Limits()
    serving.configure_logging(tuple(tokens.values()), limits, sys.stderr)
    config = load_stack(args.stack, args.project)
    services = [service.name for service in config.services]
    # A member of a release group: its dispatch names the group (the Rollback workflow rolls back every member).
    groups = {member: group for group, members in config.release_groups.items() for member in members}
    metrics = Metrics()
    route_update = None
    if args.fast_path:
        from rollout.ops.fastpath import RouteError, RouteUpdater

        try:
            route_update = RouteUpdater.in_cluster(args.namespace)
        except (RouteError, OSError) as err:
            print(f"rollout: relay: --fast-path: {err}", file=sys.stderr)
            return EXIT_REFUSED
    retry = Retry(deadline_s=args.deadline, timeout_s=min(args.timeout, args.deadline))
    host, port = args.listen

    def started() -> None:
        import logging

        logging.getLogger("rollout.ops.relay").info(
            "stack %s: relaying rollback triggers to %s/repos/%s/dispatches, listening on %s:%d%s",
            args.stack, public_url(args.forge_url).rstrip("/"), args.repository, host, port,
            " (fast path on)" if route_update else "",
        )

    async def main_() -> None:
        forge = Forge(args.forge_url, args.repository, tokens["GITHUB_TOKEN"], retry, metrics)
        relay = Relay(args.stack, tokens["ROLLOUT_RELAY_TOKEN"], forge, metrics, route_update, services, groups)
        await serve(relay, host, port, limits, started)

    try:
        asyncio.run(main_())
    except OSError as err:
        print(f"rollout: relay: cannot listen on {args.listen[0]}:{args.listen[1]}: {err.strerror or err}", file=sys.stderr)
        return EXIT_REFUSED
    except (KeyboardInterrupt, web.GracefulExit):
        pass
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rollout",
        description="Render, check and advance the rollout of a stack (stacks/Pulumi.<stack>.yaml).",
    )
    parser.add_argument(
        "--project",
        type=_project_folder,
        default=None,
        help="folder holding Pulumi.yaml and stacks/ (default: found from the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="write the stack's artifacts to a folder")
    _stack_arg(render)
    render.add_argument("--out", required=True, type=_given, help="output folder")
    render.set_defaults(handler=cmd_render)

    check = commands.add_parser("check", help="validate the config and run the program offline")
    _stack_arg(check)
    check.add_argument(
        "--evidence", default=None, type=_given, help="gate evidence from `rollout evidence` (its deployed state is what is deployed)"
    )
    check.add_argument(
        "--base",
        default=None,
        type=_given,
        help="without --evidence, the git ref whose stack file counts as deployed when the backend has "
        "none (default HEAD); the change is the files changed since it",
    )
    check.add_argument(
        "--deployed-state", default=None, type=_given,
        help="the deployed rollout state as a file (`pulumi stack output --json`), instead of the backend's",
    )
    add_now_argument(check, "the gates' verdict")
    check.set_defaults(handler=cmd_check)

    flags = commands.add_parser("flags", help="the flags as flagd resolves them now (or --at TIME), for CI jobs")
    _stack_arg(flags)
    flags.add_argument("--format", choices=("env", "json"), default="env", help="env: FLAG_<KEY>=true|false lines")
    flags.add_argument("--targeting-key", default="ci", type=_utf8, help="the evaluation's targeting key (default: ci)")
    flags.add_argument("--track", choices=("stable", "canary"), default="stable", help="the evaluation's track")
    flags.add_argument(
        "--at", "--now", dest="now", type=instant_arg, default=None, metavar="TIME",
        help=f"the flags as flagd will resolve them at TIME (a progressive flag's percentage that day); {FORMAT_HINT}",
    )
    flags.set_defaults(handler=cmd_flags)

    verify = commands.add_parser("verify", help="smoke-test a deployed stack: components, targets, rules, routing, watchdog")
    _stack_arg(verify)
    verify.add_argument("--prometheus", required=True, type=_base_url, help="Prometheus base URL")
    verify.add_argument("--alertmanager", required=True, type=_base_url, help="Alertmanager base URL")
    verify.add_argument("--grafana", type=_base_url, help="Grafana base URL (checks /api/health)")
    verify.add_argument(
        "--wait", type=_wait_seconds, default=90,
        help="seconds to wait for first scrapes and the Watchdog (Prometheus resends alerts once a minute)",
    )
    _http_args(verify)
    verify.set_defaults(handler=cmd_verify)

    status = commands.add_parser("status", help="each service's stage, time in stage, next stage, earliest advance and what it waits for")
    status.add_argument("--stack", "-s", default=None, type=_stack_name, help="stack name: stacks/Pulumi.<stack>.yaml")
    status.add_argument("--all", action="store_true", help="every stack and service of the project in one table")
    status.add_argument("--service", default=None, help="one service (default: every service)")
    status.add_argument("--release", default=None, type=_image_arg,
                        help="one release across the fleet: every stack running it, its wave, what it waits for")
    status.add_argument("--by-release", action="store_true",
                        help="with --all: every stack grouped by release, in promotion order")
    status.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text",
        help="json: for the Stage watch workflow; markdown (with --all): a table for a summary or a comment",
    )
    add_now_argument(status)
    status.set_defaults(handler=cmd_status)

    plan = commands.add_parser("plan", help="the schedule of the current rollout: each stage's start, soak and the completion date")
    plan.add_argument("--stack", "-s", default=None, type=_stack_name, help="stack name: stacks/Pulumi.<stack>.yaml")
    plan.add_argument("--all", action="store_true", help="every stack of the fleet, wave by wave, to completion")
    plan.add_argument("--service", default=None, help="one service (default: every service)")
    plan.add_argument(
        "--format", choices=("text", "json", "mermaid"), default="text", help="mermaid: a Gantt chart (GitHub renders it)"
    )
    add_now_argument(plan, "the schedule")
    plan.set_defaults(handler=cmd_plan)

    advance = commands.add_parser("advance", help="append the next stage of the plan to the stack file, now")
    _stack_arg(advance)
    advance.add_argument("--service", default=None, help="one service (default: every service not at its final stage)")
    advance.add_argument("--evidence", default=None, type=_given, help="gate evidence from `rollout evidence`: refuse what the gates refuse")
    advance.add_argument("--reason", default=None, type=_utf8, help="recorded with the new history entry")
    advance.add_argument("--dry-run", action="store_true", help="print the entry and the gates' verdict; write nothing")
    add_now_argument(advance, "the advance (its entry's startedAt and the gates' verdict)")
    advance.set_defaults(handler=cmd_advance)

    diff = commands.add_parser("diff", help="the rendered artifacts of the working tree against those of a git ref, per file")
    _stack_arg(diff)
    diff.add_argument("--base", default=None, type=_given, help="the git ref to compare with (default HEAD)")
    diff.set_defaults(handler=cmd_diff)

    release = commands.add_parser(
        "release", help="start a new rollout: set the canary's image and append weight 0, in one edit"
    )
    _stack_arg(release)
    release.add_argument("--service", default=None, help="the service (default: the stack's only service)")
    release.add_argument("--group", default=None, help="a release group (releaseGroups): every member, one --image SERVICE=IMAGE each")
    release.add_argument("--image", required=True, type=_release_image_arg, action="append",
                         help="the new release: an image with a pinned tag or digest (with --group: SERVICE=IMAGE, once per member)")
    release.add_argument("--reason", default=None, type=_utf8, help="recorded with the new history entry")
    release.add_argument("--dry-run", action="store_true", help="print the edit and the verdict; write nothing")
    add_now_argument(release, "the release (its entry's startedAt)")
    release.set_defaults(handler=cmd_release)

    promote = commands.add_parser(
        "promote", help="after the rollout completed: set stable.image to the release and append weight 0"
    )
    _stack_arg(promote)
    promote.add_argument("--service", default=None, help="the service (default: the stack's only service)")
    promote.add_argument("--group", default=None, help="a release group (releaseGroups): every member, once each completed")
    promote.add_argument("--reason", default=None, type=_utf8, help="recorded with the new history entry")
    promote.add_argument("--dry-run", action="store_true", help="print the edit and the verdict; write nothing")
    add_now_argument(promote, "the promotion (its entry's startedAt and the gates' verdict)")
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser("rollback", help="append weight 0 with a reason to the stack file; never refused")
    _stack_arg(rollback)
    rollback.add_argument("--service", default=None, help="one service (default: every service)")
    rollback.add_argument("--reason", required=True, type=_utf8, help="why; recorded in the history")
    rollback.add_argument("--dry-run", action="store_true", help="print the entry that would be appended; write nothing")
    add_now_argument(rollback, "the rollback's entry")
    rollback.set_defaults(handler=cmd_rollback)

    from rollout.cli.fleet import add_fleet_commands

    add_fleet_commands(commands, _stack_arg, add_now_argument)

    evidence = commands.add_parser("evidence", help="gather the gate evidence (the canary's SLIs over the deployed stage) as JSON")
    _stack_arg(evidence)
    evidence.add_argument("--prometheus", required=True, type=_base_url, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    evidence.add_argument(
        "--deployed-state", default=None, type=_given, help="the deployed rollout state: `pulumi stack output --json` or rolloutState"
    )
    evidence.add_argument(
        "--staging-state", default=None, type=_given, help="the same for the stack this one promotes from (promotesFrom)"
    )
    evidence.add_argument(
        "--base", default=None, type=_given, help="without --deployed-state, the git ref whose stack file counts as deployed (default HEAD)"
    )
    evidence.add_argument(
        "--live-routes", default=None, type=_given,
        help="the live HTTPRoutes (`kubectl get httproutes -n NS -o json`): their canary weights become evidence",
    )
    evidence.add_argument("--out", default=None, type=_given, help="write the JSON here (default: standard output)")
    add_now_argument(evidence, "the evidence (its window ends at TIME)")
    _http_args(evidence)
    evidence.set_defaults(handler=cmd_evidence)

    relay = commands.add_parser(
        "relay", help="serve Alertmanager's rollback webhook and send each rollback trigger as a repository_dispatch"
    )
    _stack_arg(relay)
    relay.add_argument("--listen", required=True, type=_listen, metavar="HOST:PORT", help="address to serve on, e.g. 0.0.0.0:8080")
    relay.add_argument("--forge-url", required=True, type=_base_url, help="the forge's REST API, e.g. https://api.github.com")
    relay.add_argument("--repository", required=True, type=_repository, metavar="OWNER/NAME", help="the repository whose rollback workflow runs")
    relay.add_argument(
        "--fast-path", action="store_true",
        help="first set the service's HTTPRoute so the canary takes no traffic (in a pod, with its ServiceAccount)",
    )
    relay.add_argument("--namespace", default=None, type=_given, help="the routes' namespace (default: the pod's)")
    relay.add_argument(
        "--deadline", type=_seconds, default=30.0,
        help="seconds one dispatch may take, retries included (default 30); no answer, 5xx and 429 are retried with backoff",
    )
    relay.add_argument("--timeout", type=_seconds, default=10.0, help="seconds one try waits for the forge (default 10)")
    relay.set_defaults(handler=cmd_relay)
    return parser


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a file descriptor (a test's capture)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code else EXIT_OK
    args.project = (args.project or find_project()).resolve()
    from rollout.load.clock import rehearse, tolerate_future

    rehearse(getattr(args, "now", None))
    tolerate_future(False)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        if getattr(args, "stack", None) is not None and not _is_file(stack_file(args.stack, args.project)):
            from rollout.cli.status import stack_names

            known = ", ".join(stack_names(args.project)) or "none"
            raise UsageError(
                f"no stack {args.stack!r}: {stack_file(args.stack, args.project)} does not exist; stacks: {known}"
            )
        code = handler(args)
        sys.stdout.flush()  # a closed stdout is found here, not in the exit's own flush
        return code
    except ConfigError as err:
        for line in err.problems:
            _say(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as err:
        _say(f"rollout: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Busy as err:
        _say(f"rollout: {err}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`rollout status | head -1`): nothing more can be
        # shown. Point stdout at /dev/null so the exit's own flush stays quiet.
        _quiet_stdout()
        _say("rollout: standard output was closed before everything was written", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as err:
        # The environment, not a bug: a full disk, a read-only file system, an
        # immutable file, a name too long, a permission.
        where = f"{err.filename}: " if err.filename else ""
        _say(f"rollout: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as err:  # noqa: BLE001 - one line, not a traceback, unless asked
        if os.environ.get("ROLLOUT_DEBUG"):
            raise
        _say(f"rollout: internal error: {type(err).__name__}: {err} (set ROLLOUT_DEBUG=1 for a traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
