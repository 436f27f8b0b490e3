"""The ``rollout`` command line: the parser and :func:`main`.

Each command runs in a module of its own under rollout/cli/ (``render``,
``check``, ``status``, ``plan``, ``stages`` for advance/rollback/release/promote,
``flags``, ``verify``, ``evidence``, ``relay``, ``diff``), imported only when that
command runs: ``rollout --help`` loads none of them, and no command loads what
another needs (``check`` alone loads Pulumi, ``relay`` alone aiohttp).

Exit codes shared by every command (rollout.cli.output): 0 success, 1 a refusal
(a mandatory policy violation, an unhealthy verification, a stack file another
edit holds locked), 2 bad input (a broken stack file, wrong arguments). Errors are
one message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

from rollout.cli import options
from rollout.cli.clock import add_now_argument, instant_arg
from rollout.cli.output import EXIT_BAD_INPUT, EXIT_OK, expected, report_error
from rollout.load.clock import rehearse, tolerate_future
from rollout.load.stack import shown_stack_file, stack_file, stack_names
from rollout.model.errors import UsageError
from rollout.model.time import FORMAT_HINT

Handler = Callable[[argparse.Namespace], int]


#: What ``--all-services`` does for the commands that advance.
EVERY_ADVANCES = "every service of the stack: each that the gates allow advances, the others are reported"


def _command(target: str) -> Handler:
    """The handler ``module:function`` of rollout.cli, imported when the command runs."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"rollout.cli.{module}"), name)(args)

    # Named as the function it runs, in its module (docs/architecture.md's table).
    run.__qualname__ = run.__name__ = name
    run.__module__ = f"rollout.cli.{module}"
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = options.Parser(
        prog="rollout",
        description=f"Render, check and advance the rollout of a stack ({shown_stack_file('<stack>')}).",
    )
    parser.add_argument(
        "--project",
        type=options.project_folder,
        default=None,
        help="folder holding Pulumi.yaml and stacks/ (default: found from the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="write the stack's artifacts to a folder")
    options.stack_arg(render)
    render.add_argument("--out", required=True, type=options.given, help="output folder")
    render.set_defaults(handler=_command("render:cmd_render"))

    check = commands.add_parser("check", help="validate the config and run the program offline")
    options.stack_arg(check)
    check.add_argument(
        "--evidence", default=None, type=options.given, help="gate evidence from `rollout evidence` (its deployed state is what is deployed)"
    )
    check.add_argument(
        "--base",
        default=None,
        type=options.given,
        help="without --evidence, the git ref whose stack file counts as deployed when the backend has "
        "none (default HEAD); the change is the files changed since it",
    )
    check.add_argument(
        "--deployed-state", default=None, type=options.given,
        help="the deployed rollout state as a file (`pulumi stack output --json`), instead of the backend's",
    )
    add_now_argument(check, "the gates' verdict")
    check.set_defaults(handler=_command("check:cmd_check"))

    flags = commands.add_parser("flags", help="the flags as flagd resolves them now (or --at TIME), for CI jobs")
    options.stack_arg(flags)
    flags.add_argument("--format", choices=("env", "json"), default="env", help="env: FLAG_<KEY>=true|false lines")
    flags.add_argument("--targeting-key", default="ci", type=options.utf8, help="the evaluation's targeting key (default: ci)")
    flags.add_argument("--track", choices=("stable", "canary"), default="stable", help="the evaluation's track")
    flags.add_argument(
        "--at", "--now", dest="now", type=instant_arg, default=None, metavar="TIME",
        help=f"the flags as flagd will resolve them at TIME (a progressive flag's percentage that day); {FORMAT_HINT}",
    )
    flags.set_defaults(handler=_command("flags:cmd_flags"))

    verify = commands.add_parser("verify", help="smoke-test a deployed stack: components, targets, rules, routing, watchdog")
    options.stack_arg(verify)
    verify.add_argument("--prometheus", required=True, type=options.base_url, help="Prometheus base URL")
    verify.add_argument("--alertmanager", required=True, type=options.base_url, help="Alertmanager base URL")
    verify.add_argument("--grafana", type=options.base_url, help="Grafana base URL (checks /api/health)")
    verify.add_argument("--relay", type=options.base_url, help="the rollback relay's base URL (checks /healthz)")
    verify.add_argument(
        "--wait", type=options.wait_seconds, default=90,
        help="seconds to wait for first scrapes and the Watchdog (Prometheus resends alerts once a minute)",
    )
    options.http_args(verify)
    verify.set_defaults(handler=_command("verify:cmd_verify"))

    status = commands.add_parser("status", help="each service's stage, time in stage, next stage, earliest advance and what it waits for")
    options.stack_arg(status, required=False)
    status.add_argument("--all", action="store_true", help="every stack and service of the project in one table")
    status.add_argument("--service", default=None, help="one service (default: every service)")
    status.add_argument("--release", default=None, type=options.image,
                        help="one release across the fleet: every stack running it, its wave, what it waits for")
    status.add_argument("--by-release", action="store_true",
                        help="with --all: every stack grouped by release, in promotion order")
    status.add_argument(
        "--evidence", default=None, type=options.given,
        help="gate evidence from `rollout evidence`: also each traffic measure's verdict (pass, fail, inconclusive)",
    )
    status.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text",
        help="json: for the Stage watch workflow; markdown (with --all): a table for a summary or a comment",
    )
    add_now_argument(status)
    status.set_defaults(handler=_command("status:cmd_status"))

    plan = commands.add_parser("plan", help="the schedule of the current rollout: each stage's start, soak and the completion date")
    options.stack_arg(plan, required=False)
    plan.add_argument("--all", action="store_true", help="every stack of the fleet, wave by wave, to completion")
    plan.add_argument("--service", default=None, help="one service (default: every service)")
    plan.add_argument(
        "--format", choices=("text", "json", "mermaid"), default="text", help="mermaid: a Gantt chart (GitHub renders it)"
    )
    add_now_argument(plan, "the schedule")
    plan.set_defaults(handler=_command("plan:cmd_plan"))

    advance = commands.add_parser("advance", help="append the next stage of the plan to the stack file, now")
    options.stack_arg(advance)
    options.service_args(advance, EVERY_ADVANCES)
    advance.add_argument("--evidence", default=None, type=options.given, help="gate evidence from `rollout evidence`: refuse what the gates refuse")
    advance.add_argument("--reason", default=None, type=options.utf8, help="recorded with the new history entry")
    advance.add_argument("--dry-run", action="store_true", help="print the entry and the gates' verdict; write nothing")
    add_now_argument(advance, "the advance (its entry's startedAt and the gates' verdict)")
    advance.set_defaults(handler=_command("stages:cmd_advance"))

    stage = commands.add_parser(
        "stage", help="one step: gather evidence, append the next stage, write the pack's config for the preview"
    )
    options.stack_arg(stage)
    options.service_args(stage, EVERY_ADVANCES)
    stage.add_argument("--prometheus", default=None, type=options.base_url,
                       help="the stack's Prometheus (default: $PROMETHEUS_URL_<STACK>)")
    stage.add_argument("--live-routes", default=None, type=options.given,
                       help="the live HTTPRoutes (`kubectl get httproutes -n NS -o json --show-managed-fields`)")
    stage.add_argument("--base", default=None, type=options.given,
                       help="the git ref whose stack file counts as deployed when the backend has none (default HEAD)")
    stage.add_argument("--reason", default=None, type=options.utf8, help="recorded with the new history entry")
    stage.add_argument("--dry-run", action="store_true", help="gather the evidence, print the verdict; edit nothing")
    add_now_argument(stage, "the step (the evidence's window ends then, the entry starts then)")
    options.http_args(stage)
    stage.set_defaults(handler=_command("stage:cmd_stage"))

    diff = commands.add_parser("diff", help="the rendered artifacts of the working tree against those of a git ref, per file")
    options.stack_arg(diff)
    diff.add_argument("--base", default=None, type=options.given, help="the git ref to compare with (default HEAD)")
    diff.set_defaults(handler=_command("diff:cmd_diff"))

    release = commands.add_parser(
        "release", help="start a new rollout: set the canary's image and append weight 0, in one edit"
    )
    options.stack_arg(release)
    options.service_args(release, "every service of the stack not in a release group takes the image",
                         group="a release group (releaseGroups): every member, one --image SERVICE=IMAGE each")
    release.add_argument("--image", required=True, type=options.release_image, action="append",
                         help="the new release: an image with a pinned tag or digest (with --group: SERVICE=IMAGE, once per member)")
    release.add_argument("--reason", default=None, type=options.utf8, help="recorded with the new history entry")
    release.add_argument("--dry-run", action="store_true", help="print the edit and the verdict; write nothing")
    add_now_argument(release, "the release (its entry's startedAt)")
    release.set_defaults(handler=_command("stages:cmd_release"))

    promote = commands.add_parser(
        "promote", help="after the rollout completed: set stable.image to the release and append weight 0"
    )
    options.stack_arg(promote)
    options.service_args(promote, "every service of the stack not in a release group whose rollout completed")
    promote.add_argument("--evidence", default=None, type=options.given,
                         help="gate evidence over the final stage (`rollout evidence`): refuse what the gates refuse")
    promote.add_argument("--group", default=None, help="a release group (releaseGroups): every member, once each completed")
    promote.add_argument("--reason", default=None, type=options.utf8, help="recorded with the new history entry")
    promote.add_argument("--dry-run", action="store_true", help="print the edit and the verdict; write nothing")
    add_now_argument(promote, "the promotion (its entry's startedAt and the gates' verdict)")
    promote.set_defaults(handler=_command("stages:cmd_promote"))

    rollback = commands.add_parser("rollback", help="append weight 0 with a reason to the stack file; never refused")
    options.stack_arg(rollback)
    options.service_args(rollback, "every service of the stack")
    rollback.add_argument("--reason", required=True, type=options.utf8, help="why; recorded in the history")
    rollback.add_argument("--dry-run", action="store_true", help="print the entry that would be appended; write nothing")
    add_now_argument(rollback, "the rollback's entry")
    rollback.set_defaults(handler=_command("stages:cmd_rollback"))

    _fleet_commands(commands)

    evidence = commands.add_parser("evidence", help="gather the gate evidence (the canary's SLIs over the deployed stage) as JSON")
    options.stack_arg(evidence)
    evidence.add_argument("--prometheus", required=True, type=options.base_url, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    evidence.add_argument(
        "--deployed-state", default=None, type=options.given, help="the deployed rollout state: `pulumi stack output --json` or rolloutState"
    )
    evidence.add_argument(
        "--staging-state", default=None, type=options.given, help="the same for the stack this one promotes from (promotesFrom)"
    )
    evidence.add_argument(
        "--base", default=None, type=options.given, help="without --deployed-state, the git ref whose stack file counts as deployed (default HEAD)"
    )
    evidence.add_argument(
        "--live-routes", default=None, type=options.given,
        help="the live HTTPRoutes (`kubectl get httproutes -n NS -o json --show-managed-fields`): their canary weights become evidence",
    )
    evidence.add_argument("--out", default=None, type=options.given, help="write the JSON here (default: standard output)")
    add_now_argument(evidence, "the evidence (its window ends at TIME)")
    options.http_args(evidence)
    evidence.set_defaults(handler=_command("evidence:cmd_evidence"))

    relay = commands.add_parser(
        "relay", help="serve Alertmanager's rollback webhook and send each rollback trigger as a repository_dispatch"
    )
    options.stack_arg(relay)
    relay.add_argument("--listen", required=True, type=options.listen, metavar="HOST:PORT", help="address to serve on, e.g. 0.0.0.0:8080")
    relay.add_argument("--forge-url", required=True, type=options.base_url, help="the forge's REST API, e.g. https://api.github.com")
    relay.add_argument("--repository", required=True, type=options.repository, metavar="OWNER/NAME", help="the repository whose rollback workflow runs")
    relay.add_argument(
        "--fast-path", action="store_true",
        help="first set the service's HTTPRoute so the canary takes no traffic (in a pod, with its ServiceAccount)",
    )
    relay.add_argument("--namespace", default=None, type=options.given, help="the routes' namespace (default: the pod's)")
    relay.add_argument(
        "--deadline", type=options.seconds, default=30.0,
        help="seconds one dispatch may take, retries included (default 30); no answer, 5xx and 429 are retried with backoff",
    )
    relay.add_argument("--timeout", type=options.seconds, default=10.0, help="seconds one try waits for the forge (default 10)")
    relay.set_defaults(handler=_command("relay:cmd_relay"))
    return parser


def _fleet_commands(commands) -> None:
    """``rollout stacks``, ``override`` and ``resume`` (rollout.cli.fleet)."""
    stacks = commands.add_parser("stacks", help="every stack found in stacks/, in promotion order, with its wave")
    stacks.add_argument("--format", choices=("text", "json", "names", "lines", "github-output"), default="text",
                        help="github-output: the workflows' generated matrices (matrix=..., wave<N>=...)")
    stacks.add_argument("--tier", action="append", default=None, help="only stacks of this tier (repeatable)")
    stacks.add_argument("--changed-since", default=None, type=options.given,
                        help="only the stacks a change since this git ref deploys (every stack when code changed)")
    stacks.add_argument("--max-waves", type=int, default=4, help="github-output: the wave jobs the workflow has")
    stacks.set_defaults(handler=_command("fleet:cmd_stacks"))
    for name, help_ in (
        ("override", "record an emergency override of the freeze windows (who, why, until when)"),
        ("resume", "record that the stacks downstream may advance a release this stack rolled back"),
    ):
        command = commands.add_parser(name, help=help_)
        options.stack_arg(command)
        command.add_argument("--service", default=None, help="one service and its release group (default: every one)")
        command.add_argument("--by", required=True, type=options.utf8, help="who records it")
        command.add_argument("--reason", required=True, type=options.utf8, help="why; recorded in the history")
        if name == "override":
            command.add_argument("--until", required=True, type=instant_arg, metavar="TIME",
                                 help=f"when the override ends; {FORMAT_HINT}")
        command.add_argument("--dry-run", action="store_true", help="print the entries; write nothing")
        add_now_argument(command, f"the {name}'s entry")
        command.set_defaults(handler=_command(f"fleet:cmd_{name}"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code else EXIT_OK
    args.project = (args.project or options.find_project()).resolve()
    rehearse(getattr(args, "now", None))
    tolerate_future(False)
    handler: Handler = args.handler
    try:
        if getattr(args, "stack", None) is not None and not _is_file(stack_file(args.stack, args.project)):
            known = ", ".join(stack_names(args.project)) or "none"
            raise UsageError(
                f"no stack {args.stack!r}: {stack_file(args.stack, args.project)} does not exist; stacks: {known}"
            )
        code = handler(args)
        sys.stdout.flush()  # a closed stdout is found here, not in the exit's own flush
        return code
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - one line, not a traceback, unless asked
        if not expected(err) and os.environ.get("ROLLOUT_DEBUG"):
            raise
        return report_error(err)


def _is_file(path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a path longer than the file system allows
        return False


if __name__ == "__main__":
    sys.exit(main())
