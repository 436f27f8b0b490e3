"""Run the Pulumi CLI on this project with the program served from this Python.

    python -m rollout.engine PULUMI [ARGS...]

``tools/bin/pulumi`` execs this when the Python language host
(``pulumi-language-python``) is not installed beside the CLI. The host is a Go
program whose module the Go module proxy does not serve, so a site that builds
the engine from modules has the CLI and providers but no host. The engine has a
documented way to run a program without one: ``--client=ADDRESS`` attaches it
to a language runtime that is already running (the Automation API's inline
programs use it). This module starts the Pulumi SDK's own language runtime
server (``pulumi.automation._server.LanguageServer``) on 127.0.0.1 with a free
port, with the project's ``__main__.py`` as the program, and runs the CLI with
``--client`` for the commands that run the program (``up``, ``preview``). Any
other command is the CLI unchanged.

The program then runs exactly as under the host: the same entry point, the
stack's config and secrets from the engine, the same resource monitor. What
differs: the host would run the program in a fresh process per operation;
here each CLI invocation gets a fresh process too (this one). And the modules
the entry point imports are imported while the CLI starts: the engine asks
for the program only once it has read the project, detected the repository
and started the policy pack (about half a second), and this process would
otherwise sit idle through it (docs/performance.md section 7).
"""

from __future__ import annotations

import ast
import importlib
import os
import runpy
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

#: Commands (and their aliases) that run the program.
PROGRAM_COMMANDS = {"up", "update", "preview", "pre"}

#: The environment variable naming the project directory the program judges itself from.
PROJECT_ENV = "ROLLOUT_PROJECT_DIR"


def _command(args: list[str]) -> str | None:
    """The CLI's subcommand: the first argument that is not a flag or a flag's value."""
    takes_value = {"-C", "--cwd", "-s", "--stack", "--color"}
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in takes_value:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def _project_dir(args: list[str]) -> Path:
    start = Path.cwd()
    for i, arg in enumerate(args):
        if arg in ("-C", "--cwd") and i + 1 < len(args):
            start = Path(args[i + 1])
        elif arg.startswith("--cwd="):
            start = Path(arg.split("=", 1)[1])
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "Pulumi.yaml").is_file():
            return folder
    return start


def _entry_imports(entry: Path) -> list[str]:
    """The modules ``entry`` imports at its top level (absolute imports only)."""
    try:
        tree = ast.parse(entry.read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _prewarm(entry: Path) -> None:
    """Import what the program will import, ahead of the engine's call to run it.

    Python's import locks make the program's own imports wait for a module
    this thread is still importing, so the program sees it whole. A module
    that fails to import here is left out of ``sys.modules`` and fails again,
    with its real error, when the program imports it.
    """
    for name in _entry_imports(entry):
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - the program's own import reports it
            return


def _serve(project: Path):
    # Loaded only for `up` and `preview`: the other commands exec the CLI unchanged.
    import grpc
    from pulumi.automation._server import LanguageServer
    from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
    from pulumi.runtime.proto import language_pb2_grpc

    entry = project / "__main__.py"

    def program() -> None:
        runpy.run_path(str(entry), run_name="__main__")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_GRPC_CHANNEL_OPTIONS)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m rollout.engine PULUMI [ARGS...]", file=sys.stderr)
        return 2
    cli, args = argv[0], argv[1:]
    if _command(args) not in PROGRAM_COMMANDS:
        os.execv(cli, [cli, *args])
    project = _project_dir(args)
    os.chdir(project)
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    os.environ[PROJECT_ENV] = str(project)
    server, port = _serve(project)
    proc = subprocess.Popen([cli, *args, f"--client=127.0.0.1:{port}"])
    threading.Thread(target=_prewarm, args=(project / "__main__.py",), name="prewarm", daemon=True).start()

    def forward(signum, _frame):
        proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        return proc.wait()
    finally:
        server.stop(0)


def exit_now(code: int) -> None:
    """Leave with ``code`` once the CLI is done, without tearing the interpreter down.

    The program ran in this process: finalising it (every module it loaded, the
    language runtime's gRPC threads) takes 0.2 to 0.4 s of every ``pulumi up``
    and ``pulumi preview`` and does nothing the CLI's exit has not done already.
    Our own output is flushed first; the program's went to the engine.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
