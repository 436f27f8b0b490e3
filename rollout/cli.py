"""The ``rollout`` command line.

Exit codes shared by every command: 0 success, 1 a refusal (a mandatory policy
violation, an unhealthy verification), 2 bad input (a broken stack file, wrong
arguments). Errors are one message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from rollout.errors import ConfigError, UsageError
from rollout.loader import load_stack, project_root, stack_file

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def find_project(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding Pulumi.yaml; else the package's own."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "stacks").is_dir():
            return folder
    return project_root()


def _stack_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", "-s", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")


def cmd_render(args: argparse.Namespace) -> int:
    from rollout.render import render

    config = load_stack(args.stack, args.project)
    written = render(config, args.stack, Path(args.out))
    for path in written:
        print(path)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    import pulumi

    from rollout.harness import run_program

    load_stack(args.stack, args.project)
    try:
        run = run_program(args.stack, args.project)
    except pulumi.RunError as err:
        raise ConfigError(str(err).splitlines()) from None
    print(f"stack {args.stack}: config valid; {len(run.resources)} resources declared offline")
    return check_gates(args)


def check_gates(args: argparse.Namespace) -> int:
    """The rollout gates of ``rollout check`` (rollout.checking): print each violation, exit 1 on any."""
    from rollout.checking import format_violation, gate_report, load_evidence

    evidence = load_evidence(Path(args.evidence)) if args.evidence else None
    report = gate_report(args.stack, args.project, evidence=evidence, base=args.base)
    for note in report.notes:
        print(f"note: {note}")
    for violation in report.violations:
        print(format_violation(violation))
    advancing = ", ".join(report.advancing) or "none"
    verdict = f"{len(report.violations)} gate violation(s)" if report.refused else "gates pass"
    print(f"stack {args.stack}: advancing: {advancing} (deployed: {report.deployed_source}); {verdict}")
    return EXIT_REFUSED if report.refused else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollout",
        description="Render, check and advance the rollout of a stack (stacks/Pulumi.<stack>.yaml).",
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        help="folder holding Pulumi.yaml and stacks/ (default: found from the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="write the stack's artifacts to a folder")
    _stack_arg(render)
    render.add_argument("--out", required=True, help="output folder")
    render.set_defaults(handler=cmd_render)

    check = commands.add_parser("check", help="validate the config and run the program offline")
    _stack_arg(check)
    check.add_argument(
        "--evidence", default=None, help="gate evidence from `rollout evidence` (its deployed state is what is deployed)"
    )
    check.add_argument(
        "--base",
        default=None,
        help="without --evidence, the git ref whose stack file counts as deployed (default HEAD)",
    )
    check.set_defaults(handler=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code else EXIT_OK
    args.project = (args.project or find_project()).resolve()
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        if hasattr(args, "stack") and not stack_file(args.stack, args.project).exists():
            raise UsageError(
                f"no stack {args.stack!r}: {stack_file(args.stack, args.project)} does not exist"
            )
        return handler(args)
    except ConfigError as err:
        for line in err.problems:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as err:
        print(f"rollout: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - one line, not a traceback, unless asked
        if os.environ.get("ROLLOUT_DEBUG"):
            raise
        print(f"rollout: internal error: {type(err).__name__}: {err} (set ROLLOUT_DEBUG=1 for a traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
