"""The fleet's commands: ``rollout stacks``, ``override``, ``resume``, ``status --release`` and ``plan --all``.

Each parses, calls one function below (rollout.load.fleet, rollout.gates.fleetview,
rollout.gates.groupedits) and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from rollout.cli.markdown import cell
from rollout.gates.fleetread import FleetReader
from rollout.gates.fleetview import COLUMNS, by_release, calendar_of, cells, fleet_rows
from rollout.load.fleet import read_fleet
from rollout.model.errors import ConfigError, UsageError, printable, printable_lines
from rollout.model.time import format_time

from rollout.cli.output import EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED, say as _say, write_edit  # noqa: E402
#: Changes outside stacks/ that deploy every stack (deploy.yml's paths): the program, the gates, the policies.
CODE_PATHS = ("rollout/", "components/", "alerts/", "dashboards/", "policies/", "Pulumi.yaml", "__main__.py")


# --- rollout stacks ----------------------------------------------------------------------------


def changed_stacks(project, ref: str, stacks: list[str]) -> list[str]:
    """The stacks a change since ``ref`` deploys: every one when the code changed, else those whose file changed."""
    from rollout.gates.deployed import NoGitBase, changed_files

    try:
        changed = changed_files(project, ref)
    except NoGitBase as err:
        raise UsageError(f"--changed-since {ref}: {err}") from None
    if any(path.startswith(CODE_PATHS) for path in changed):
        return stacks
    return [s for s in stacks if f"stacks/Pulumi.{s}.yaml" in changed]


def cmd_stacks(args: argparse.Namespace) -> int:
    fleet = read_fleet(args.project)  # a cycle or an unknown stack: exit 2 naming the file and the key
    order = fleet.graph.order()
    if args.tier:
        order = [s for s in order if fleet.facts.get(s, {}).get("tier") in args.tier]
    if args.changed_since:
        order = changed_stacks(args.project, args.changed_since, order)
    waves = fleet.graph.by_wave()
    if args.format == "json":
        document = fleet.as_json()
        document["stacks"] = [s for s in document["stacks"] if s["stack"] in order]
        print(json.dumps(document, indent=2, sort_keys=True))
    elif args.format == "names":
        for stack in order:
            _say(stack)
    elif args.format == "lines":
        for stack in order:
            entry = fleet.entry(stack)
            _say(f"{stack} {entry['key']} {entry['wave']}")
    elif args.format == "github-output":
        if len(waves) > args.max_waves:
            raise UsageError(f"the fleet has {len(waves)} waves ({' → '.join(', '.join(w) for w in waves)}); the "
                             f"workflow deploys {args.max_waves}: add a wave job to it")
        # One line each: a matrix of every stack, and one per wave (empty: no stack of that wave changed).
        print(f"matrix={json.dumps({'include': [fleet.entry(s) for s in order]}, separators=(',', ':'))}")
        for number in range(args.max_waves):
            members = [fleet.entry(s) for s in order if fleet.graph.waves()[s] == number]
            print(f"wave{number}={json.dumps({'include': members}, separators=(',', ':')) if members else ''}")
        print(f"stacks={' '.join(order)}")
    else:
        table = [["wave", "stack", "promotes from", "group", "tier"]]
        for stack in order:
            entry = fleet.entry(stack)
            table.append([str(entry["wave"]), stack, ", ".join(fleet.graph.upstreams[stack]) or "-",
                          fleet.graph.groups.get(stack) or "-", entry["tier"] or "-"])
        widths = [max(len(printable(r[i])) for r in table) for i in range(len(table[0]))]
        for row in table:
            _say("  ".join(printable(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for stack, problems in sorted(fleet.broken.items()):
        for line in problems:
            _say(line, file=sys.stderr)
    return EXIT_BAD_INPUT if fleet.broken else EXIT_OK


# --- rollout override / resume --------------------------------------------------------------


def _annotate(args: argparse.Namespace, kind: str) -> int:
    from rollout.cli.clock import now_of
    from rollout.gates.edits import Refused
    from rollout.gates.groupedits import override_edit, resume_edit, rollback_services
    from rollout.load.stack import load_stack, stack_file
    from rollout.load.stackfile import locked

    for option in ("by", "reason"):
        if not getattr(args, option).strip():
            raise UsageError(f"--{option} must say {'who' if option == 'by' else 'why'} (it is recorded in the history)")
    now = now_of(args)
    path = stack_file(args.stack, args.project)
    with locked(path, args.project):
        config = load_stack(args.stack, args.project)
        services = rollback_services(config, args.service)  # a release group's members together
        try:
            if kind == "override":
                edit = override_edit(config, args.stack, services, args.by.strip(), args.reason.strip(),
                                     args.until, now)
            else:
                edit = resume_edit(config, args.stack, services, args.by.strip(), args.reason.strip(), now)
        except Refused as refused:
            for line in refused.lines:
                _say(line if line.startswith("[") else f"rollout: {line}", file=sys.stderr)
            _say(f"rollout: {kind} refused; {path.name} is unchanged", file=sys.stderr)
            return EXIT_REFUSED
        return write_edit(path, args.project, edit, kind, args.dry_run)


def cmd_override(args: argparse.Namespace) -> int:
    return _annotate(args, "override")


def cmd_resume(args: argparse.Namespace) -> int:
    return _annotate(args, "resume")


# --- release groups in release / promote -------------------------------------------------------


def group_edit(args: argparse.Namespace, config, command: str, reason: str | None, now: datetime):
    """The edit of a whole release group (``--group``), None for one service; a member alone is refused."""
    from rollout.gates.groupedits import group_members, parse_images, promote_group_edit, release_group_edit

    if args.group is None:
        service = args.service or (config.services[0].name if len(config.services) == 1 else None)
        group = config.release_group_of(service) if service else None
        if group is not None:
            raise UsageError(f"{service} is in release group {group}: `rollout {command}` takes the group "
                             f"(--group {group}{' --image SERVICE=IMAGE ...' if command == 'release' else ''})")
        if command == "release" and len(args.image) != 1:
            raise UsageError("--image: one image for one service (several, as SERVICE=IMAGE, with --group)")
        return None
    if args.service is not None:
        raise UsageError("--group and --service: name one or the other")
    if command == "release":
        members = group_members(config, args.group)
        return release_group_edit(config, args.stack, args.group, parse_images(args.image, members, args.group),
                                  reason, now)
    return promote_group_edit(config, args.stack, args.group, reason, now)


# --- status --release / --by-release, plan --all ----------------------------------------------


def fleet_json(reader: FleetReader, now: datetime, release: str | None = None) -> dict:
    rows, _ = fleet_rows(reader, now, release)
    return {name: [r.as_json() for r in members] for name, members in by_release(rows, release).items()}


def status_fleet(args: argparse.Namespace, now: datetime) -> int:
    """``rollout status --release R`` (or ``--all --by-release``): every stack of the fleet, grouped by release."""
    if args.stack is not None or args.service is not None:
        raise UsageError("status --release shows every stack of the fleet; leave out --stack and --service")
    if args.by_release and not args.all and args.release is None:
        raise UsageError("status --by-release goes with --all")
    reader = FleetReader(args.project, now, deployed_from_files=True)
    rows, broken = fleet_rows(reader, now, args.release)
    groups = by_release(rows, args.release)
    if args.format == "json":
        print(json.dumps({"now": format_time(now), "releases": {k: [r.as_json() for r in v] for k, v in groups.items()},
                          "broken": broken}, indent=2, sort_keys=True))
    elif args.format == "markdown":
        lines = []
        for name, members in groups.items():
            lines += [f"**release** {cell(name)}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            lines += ["| " + " | ".join(cell(c) for c in cells(r)) + " |" for r in members] + [""]
        sys.stdout.write(printable_lines("\n".join(lines) + "\n"))
    else:
        _say(f"as at {format_time(now)}")
        if not groups:
            _say(f"no stack runs {args.release}" if args.release else "no stack")
        for name, members in groups.items():
            _say(f"release {name}:")
            table = [list(COLUMNS)] + [[printable(c) for c in cells(r)] for r in members]
            widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS) - 1)]
            for line in table:
                _say(("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1]).rstrip())
            for row in members:
                for kind, message in row.waits:
                    if kind != "evidence":
                        _say(f"  {row.stack}/{row.service} waits for the {kind}: {message}")
    for stack, problems in sorted(broken.items()):
        for line in problems:
            _say(line, file=sys.stderr)
    return EXIT_BAD_INPUT if broken else EXIT_OK


def fleet_schedules(reader: FleetReader, now: datetime):
    """Each (wave, stack, schedule) of the fleet in promotion order, each planned stage dated after every
    upstream's (dated the same way, so the whole wave is dated), its release group's stage below, and its
    stack's freeze windows."""
    from rollout.cli.plan import Schedule, stage_rows

    graph = reader.fleet.graph
    waves = graph.waves()
    done: dict[tuple[str, str], dict[int, datetime]] = {}
    found = []
    for stack in graph.order():
        try:
            config = reader.config(stack)
        except (ConfigError, UsageError):
            continue
        state = reader.working_state(stack)
        calendar = calendar_of(state)
        opens = calendar.next_open if calendar is not None else None

        def dated(service: str, extra: dict[int, datetime]):
            constraint: dict[int, datetime] = dict(extra)
            for upstream in config.upstreams:
                for weight, at in done.get((upstream, service), {}).items():
                    constraint[weight] = max(constraint.get(weight, at), at)
            return stage_rows(state["services"][service], now, constraint or None, opens)

        planned = {s.name: dated(s.name, {}) for s in config.services}
        # A release group: a member enters stage w only after every member completed the stage below.
        for members in config.release_groups.values():
            for _ in range(len(members)):
                below: dict[int, datetime] = {}
                for member in members:
                    rows, _off = planned[member]
                    for before, after in zip(rows, rows[1:]):
                        below[after.weight] = max(below.get(after.weight, before.soak_ends_at), before.soak_ends_at)
                planned.update({m: dated(m, below) for m in members})
        for service in config.services:
            rows, off = planned[service.name]
            done[(stack, service.name)] = {row.weight: row.soak_ends_at for row in rows}
            found.append((waves.get(stack, 0), stack, Schedule(stack, service.name, service.rollout.plan, now, rows,
                                                                off, None, None)))
    return found


def plan_fleet(args: argparse.Namespace, now: datetime) -> int:
    """``rollout plan --all``: the whole fleet wave by wave to completion, as text, JSON or a Mermaid Gantt chart."""
    from rollout.cli.plan import _mermaid_rows, text

    if args.stack is not None or args.service is not None:
        raise UsageError("plan --all dates every stack of the fleet; leave out --stack and --service")
    reader = FleetReader(args.project, now, deployed_from_files=True)
    found = fleet_schedules(reader, now)
    ends = [s.completes_at for _, _, s in found if s.completes_at is not None]
    completes = max(ends) if ends else None
    if args.format == "json":
        print(json.dumps({"now": format_time(now), "completesAt": format_time(completes) if completes else None,
                          "schedules": [{"wave": w, **s.as_json()} for w, _, s in found]}, indent=2, sort_keys=True))
    elif args.format == "mermaid":
        lines = ["gantt", f"    title the fleet's rollout as at {format_time(now)} (UTC)",
                 "    dateFormat YYYY-MM-DD HH:mm", "    axisFormat %m-%d"]
        for n, (wave, stack, s) in enumerate(found):
            lines.append(f"    section wave {wave}: {printable(s.service)} on {printable(stack)}")
            lines += _mermaid_rows(s.stages, f"f{n}s")
        sys.stdout.write(printable_lines("\n".join(lines) + "\n"))
    else:
        current = None
        for wave, _stack, s in found:
            if wave != current:
                _say(f"wave {wave}:")
                current = wave
            sys.stdout.write(printable_lines(text([s])))
        _say(f"the fleet completes at {format_time(completes)} at the earliest" if completes else
             "the fleet has no completion date (a stack is off its plan)")
    return EXIT_OK


__all__ = ["changed_stacks", "cmd_stacks", "fleet_json", "fleet_schedules", "group_edit",
           "plan_fleet", "status_fleet"]
