"""What is deployed: the one answer ``rollout check``, ``evidence``, ``advance`` and the policy pack share.

:func:`resolve_deployed` decides, in this order:

1. a state given as a file (``--deployed-state FILE``: ``pulumi stack output
   --json`` or its ``rolloutState``);
2. the backend's last applied state: ``pulumi stack output --json -s S`` (the
   ``rolloutState`` output of the last ``pulumi up``), through the project's
   engine wrapper ``tools/bin/pulumi``, whenever a backend is configured
   (``PULUMI_BACKEND_URL``);
3. for a stack never deployed through the backend (no such stack there, or no
   ``rolloutState`` output yet), the stack file at a git base (``--base``,
   default ``HEAD``);
4. else nothing: the stack counts as never deployed, everywhere alike, and its
   history alone must be a valid walk of its plan from 0, each stage soaked.

Every answer says where it came from (``Resolved.source``), and the check
prints it. The upstream of ``promotesFrom`` is resolved the same way
(:func:`resolve_upstream`), with the working tree's upstream stack file as the
last resort.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.load.files import read_json_file
from rollout.load.stack import display_path, load_stack, project_root, read_stack_file, shown_stack_file, stack_file, validate
from rollout.model import jsontext
from rollout.model.config import StackConfig
from rollout.model.errors import ConfigError, UsageError
from rollout.model.state import rollout_state
from rollout.model.stored import Unreadable, parse_state
from rollout.model.transition import DeployedState

#: The git base that counts as deployed when none is given.
DEFAULT_BASE = "HEAD"
#: The stack output that carries the rollout state (``pulumi stack output --json``).
STATE_OUTPUT = "rolloutState"
#: The source of a stack that was never deployed.
NEVER_DEPLOYED = "none: never deployed"
#: Set: the state backend ``pulumi stack output`` reads (as for the Pulumi CLI itself).
BACKEND_ENV = "PULUMI_BACKEND_URL"


@dataclass(frozen=True)
class Resolved:
    """A deployed (or upstream) state as JSON, and where it came from."""

    raw: dict[str, Any] | None
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def read_state_file(path: Path, option: str = "--deployed-state") -> dict[str, Any]:
    """A rollout state from a JSON file: the state itself, or ``pulumi stack output --json``
    (whose ``rolloutState`` key holds it). Anything else is bad input naming the file."""
    data = read_json_file(path, option)
    if isinstance(data, dict) and isinstance(data.get(STATE_OUTPUT), dict):
        data = data[STATE_OUTPUT]
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict) or "stack" not in data:
        raise UsageError(
            f"{option} {path}: not a rollout state (a JSON object with stack and services, "
            f"or stack outputs with {STATE_OUTPUT})"
        )
    try:
        parse_state(data, DeployedState)
    except Unreadable as err:
        raise UsageError(f"{option} {path}: {err}") from None
    return data


class NoGitBase(Exception):
    """The project is not in a git repository, or the repository has no commit yet."""


def _git(project: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NoGitBase("git is not installed") from None


def _commit(project: Path, ref: str) -> str:
    # The ref first: a full commit id that the repository does not hold would
    # otherwise read as "no such file there", i.e. a stack never deployed.
    verify = _git(project, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if verify.returncode != 0:
        if "not a git repository" in verify.stderr:
            raise NoGitBase(f"{project} is not in a git repository")
        if ref == DEFAULT_BASE:
            raise NoGitBase("the repository has no commit yet")
        raise UsageError(f"--base {ref}: not a commit of the repository at {project}")
    return verify.stdout.strip()


def _git_show(project: Path, ref: str, relative: str) -> str | None:
    """The text of ``relative`` (a path under ``project``) at ``ref``; None when absent there."""
    result = _git(project, "show", f"{_commit(project, ref)}:./{relative}")
    if result.returncode == 0:
        return result.stdout
    error = result.stderr.strip()
    if "does not exist in" in error or "exists on disk, but not in" in error:
        return None
    raise UsageError(f"--base {ref}: git show failed: {error.splitlines()[-1] if error else result.returncode}")


def changed_files(project: Path, ref: str) -> list[str]:
    """The files a change touches: committed since ``ref`` (``git diff --name-only ref...HEAD``)
    and not yet committed, relative to the project. Raises NoGitBase outside a repository."""
    commit = _commit(project, ref)
    prefix = _git(project, "rev-parse", "--show-prefix").stdout.strip()
    names: set[str] = set()
    for args in (("diff", "--name-only", f"{commit}...HEAD"), ("diff", "--name-only", "HEAD")):
        done = _git(project, *args)
        if done.returncode != 0:
            raise UsageError(f"--base {ref}: git diff failed: {done.stderr.strip().splitlines()[-1:]}")
        names |= {line for line in done.stdout.splitlines() if line}
    # Paths outside the project keep their place in the repository, so they never pass as stack files.
    return sorted(name[len(prefix):] if name.startswith(prefix) else f"/{name}" for name in names)


def config_at_ref(stack: str, project: Path, ref: str) -> StackConfig | None:
    """The stack's config as committed at ``ref``, loaded with the same loader; None when
    the stack file does not exist at that commit (a stack never deployed)."""
    relative = shown_stack_file(stack)
    text = _git_show(project, ref, relative)
    if text is None:
        return None
    shown = f"{relative} at {ref}"
    with tempfile.TemporaryDirectory(prefix="rollout-base-") as scratch:
        path = stack_file(stack, Path(scratch))
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
        try:
            return validate(read_stack_file(path, Path(scratch)), shown)
        except ConfigError as err:
            raise ConfigError([p.replace(display_path(path, Path(scratch)), shown, 1) for p in err.problems]) from None


def state_at_ref(stack: str, project: Path, ref: str, now: datetime | None = None) -> dict[str, Any] | None:
    """The rollout state of the stack file committed at ``ref`` (None: no such file there).

    Raises :class:`NoGitBase` outside a git repository, UsageError for an unknown ref.
    """
    config = config_at_ref(stack, project, ref)
    return None if config is None else rollout_state(config, stack, now)


def _pulumi(project: Path) -> str:
    """The engine wrapper: the project's ``tools/bin/pulumi``, else this checkout's, else PATH's."""
    for root in (project, Path(__file__).resolve().parents[2]):
        wrapper = root / "tools" / "bin" / "pulumi"
        if wrapper.is_file() and os.access(wrapper, os.X_OK):
            return str(wrapper)
    return "pulumi"


def backend_state(stack: str, project: Path) -> dict[str, Any] | None:
    """The ``rolloutState`` output of the stack's last ``pulumi up``; None when the backend has
    no such stack or it has no such output (never deployed through the backend).

    Any other failure is bad input (exit 2) naming the command: the gates never
    judge against a guess while a backend is configured but cannot be read.
    """
    command = [_pulumi(project), "stack", "output", "--json", "-s", stack, "--non-interactive"]
    try:
        done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"the deployed state of {stack}: `pulumi stack output -s {stack}` failed: {err}") from None
    if done.returncode != 0:
        error = done.stderr.strip()
        if "no stack named" in error:
            return None
        last = error.splitlines()[-1] if error else f"exit {done.returncode}"
        raise UsageError(f"the deployed state of {stack}: `pulumi stack output -s {stack}` failed: {last}")
    try:
        outputs = jsontext.loads(done.stdout or "{}")
    except jsontext.JsonRefused:
        raise UsageError(f"the deployed state of {stack}: `pulumi stack output` printed no JSON") from None
    state = outputs.get(STATE_OUTPUT) if isinstance(outputs, dict) else None
    return state if isinstance(state, dict) else None


def backend_configured() -> bool:
    return bool(os.environ.get(BACKEND_ENV))


def resolve_deployed(
    stack: str,
    project: Path,
    *,
    state_file: Path | None = None,
    base: str | None = None,
    now: datetime | None = None,
    backend: bool | None = None,
    option: str = "--deployed-state",
) -> Resolved:
    """What is deployed of ``stack`` (see the module docstring for the order).

    ``base`` None is the default ``HEAD``, tolerated outside a git repository
    (then the stack counts as never deployed); an explicit base must resolve.
    ``backend`` None asks the backend when one is configured.
    """
    if state_file is not None:
        raw = read_state_file(state_file, option)
        if raw.get("stack") != stack:
            raise UsageError(f"{option} {state_file}: is the state of stack {raw.get('stack')!r}, not {stack!r}")
        return Resolved(raw, f"{state_file}")
    notes: list[str] = []
    if backend if backend is not None else backend_configured():
        raw = backend_state(stack, project)
        if raw is not None:
            return Resolved(raw, f"the backend (pulumi stack output -s {stack})")
        notes.append(f"the backend has no deployed state of {stack}: it was never deployed through the backend")
    ref = base or DEFAULT_BASE
    try:
        raw = state_at_ref(stack, project, ref, now)
    except NoGitBase as err:
        if base is not None:
            raise UsageError(f"--base {base}: {err}") from None
        notes.append(f"no git base ({err}): {stack} counts as never deployed; its history alone must walk its "
                     "plan from 0, each stage soaked")
        return Resolved(None, NEVER_DEPLOYED, tuple(notes))
    if raw is None:
        notes.append(f"{shown_stack_file(stack)} does not exist at {ref}: {stack} counts as never deployed")
        return Resolved(None, NEVER_DEPLOYED, tuple(notes))
    return Resolved(raw, f"{shown_stack_file(stack)} at {ref}", tuple(notes))


def resolve_upstream(
    name: str,
    project: Path,
    *,
    state_file: Path | None = None,
    base: str | None = None,
    now: datetime | None = None,
    backend: bool | None = None,
) -> Resolved:
    """The state of the upstream stack ``name``: as :func:`resolve_deployed`, else its working-tree file."""
    resolved = resolve_deployed(name, project, state_file=state_file, base=base, now=now, backend=backend,
                                option="--staging-state")
    if resolved.raw is not None:
        return resolved
    try:
        config = load_stack(name, project)
    except (ConfigError, UsageError) as err:
        return Resolved(None, "none", (*resolved.notes, f"no state of {name}: {err}"))
    return Resolved(rollout_state(config, name, now), f"{shown_stack_file(name)} in the working tree",
                    resolved.notes)


__all__ = [
    "DEFAULT_BASE",
    "NEVER_DEPLOYED",
    "STATE_OUTPUT",
    "NoGitBase",
    "Resolved",
    "backend_state",
    "changed_files",
    "config_at_ref",
    "read_state_file",
    "resolve_deployed",
    "resolve_upstream",
    "state_at_ref",
]


def main(argv: list[str] | None = None) -> int:
    """``python -m rollout.gates.deployed --stack S [--base REF] [--namespace]``: what is deployed.

    Prints the deployed state as JSON (with its source), or with ``--namespace``
    the namespace its live routes are in (the deployed side's; the proposal's
    only for a stack never deployed). Exit 2 with one line on bad input.
    """
    parser = argparse.ArgumentParser(description="What is deployed of a stack (the backend, else git, else nothing).")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--base", default=None)
    parser.add_argument("--namespace", action="store_true", help="print only the namespace of the live routes")
    args = parser.parse_args(argv)
    project = next((f for f in (Path.cwd().resolve(), *Path.cwd().resolve().parents) if (f / "Pulumi.yaml").is_file()),
                   project_root())
    try:
        resolved = resolve_deployed(args.stack, project, base=args.base)
        if args.namespace:
            namespace = (resolved.raw or {}).get("namespace")
            if namespace is None:
                settings = load_stack(args.stack, project).kubernetes
                namespace = settings.namespace if settings is not None else ""
            print(namespace)
        else:
            print(json.dumps({"source": resolved.source, "state": resolved.raw}, indent=2, sort_keys=True))
    except UsageError as err:
        print(f"rollout.gates.deployed: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
