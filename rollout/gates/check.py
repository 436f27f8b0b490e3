"""The gate half of ``rollout check`` (and of ``rollout advance --evidence``).

Resolves what the gates compare: the new state (the stack file in the working
tree), the deployed state (the evidence's ``deployedState``; without evidence, the
stack file as committed at a git base, ``--base REF``, default ``HEAD``) and the
upstream state of a stack with ``promotesFrom`` (the evidence's
``upstreamState``; without it, the upstream stack file at the same base). Then it
runs :func:`rollout.gates.judge.judge` and reports.

Entry points for the CLI and the policy pack's tests: :func:`gate_report`,
:func:`format_violation`, :func:`load_evidence`, :func:`read_state_file` and
:func:`state_at_ref`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.model.config import StackConfig
from rollout.model.errors import ConfigError, UsageError
from rollout.gates.judge import GateViolation, advancing_services, judge, unreadable_service
from rollout.load.stack import display_path, load_stack, read_stack_file, shown_stack_file, stack_file, validate
from rollout.model.state import rollout_state
from rollout.model.time import utc_now

#: The git base that ``rollout check`` compares against when none is given.
DEFAULT_BASE = "HEAD"
#: The stack output that carries the rollout state (``pulumi stack output --json``).
STATE_OUTPUT = "rolloutState"


@dataclass
class GateReport:
    """What the gates decided for one stack, and what they compared."""

    stack: str
    violations: list[GateViolation]
    #: Services whose weight goes up from the deployed state (the judged ones).
    advancing: list[str]
    #: Where the deployed state came from, for the output ("evidence", "git HEAD", ...).
    deployed_source: str
    upstream_source: str | None = None
    #: Remarks worth printing (e.g. no git base available).
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.violations)


def format_violation(violation: GateViolation) -> str:
    """One line per violation: ``[mandatory] <policy> (service <name>): <message>``."""
    return f"[mandatory] {violation.policy} (service {violation.service}): {violation.message}"


def load_evidence(path: Path) -> dict[str, Any]:
    """Read a ``rollout evidence`` file; a missing or non-JSON file is bad input (exit 2).

    Its content is judged by the gates: evidence that lacks what they need refuses
    the advance rather than failing here, exactly as in the policy pack.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--evidence {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--evidence {path}: cannot be read: {err}") from None
    except ValueError as err:
        raise UsageError(f"--evidence {path}: not JSON: {err}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--evidence {path}: must be a JSON object, as `rollout evidence` writes")
    return data


def read_state_file(path: Path, option: str = "--deployed-state") -> dict[str, Any]:
    """A rollout state from a JSON file: the state itself, or ``pulumi stack output --json``
    (whose ``rolloutState`` key holds it)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"{option} {path}: not a readable JSON file: {err}") from None
    if isinstance(data, dict) and isinstance(data.get(STATE_OUTPUT), dict):
        data = data[STATE_OUTPUT]
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict) or "stack" not in data:
        raise UsageError(
            f"{option} {path}: not a rollout state (a JSON object with stack and services, "
            f"or stack outputs with {STATE_OUTPUT})"
        )
    for name, service in data["services"].items():
        why = unreadable_service(service)
        if why:
            raise UsageError(f"{option} {path}: services.{name}: {why}")
    return data


class NoGitBase(Exception):
    """The project is not in a git repository, or the repository has no commit yet."""


def _git(project: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NoGitBase("git is not installed") from None


def _git_show(project: Path, ref: str, relative: str) -> str | None:
    """The text of ``relative`` (a path under ``project``) at ``ref``; None when absent there."""
    # The ref first: a full commit id that the repository does not hold would
    # otherwise read as "no such file there", i.e. a stack never deployed.
    verify = _git(project, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if verify.returncode != 0:
        if "not a git repository" in verify.stderr:
            raise NoGitBase(f"{project} is not in a git repository")
        if ref == DEFAULT_BASE:
            raise NoGitBase("the repository has no commit yet")
        raise UsageError(f"--base {ref}: not a commit of the repository at {project}")
    result = _git(project, "show", f"{verify.stdout.strip()}:./{relative}")
    if result.returncode == 0:
        return result.stdout
    error = result.stderr.strip()
    if "does not exist in" in error or "exists on disk, but not in" in error:
        return None
    raise UsageError(f"--base {ref}: git show failed: {error.splitlines()[-1] if error else result.returncode}")


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


def gate_report(
    stack: str,
    project: Path,
    *,
    evidence: dict[str, Any] | None = None,
    base: str | None = None,
    now: datetime | None = None,
    config: StackConfig | None = None,
    new_state: dict[str, Any] | None = None,
) -> GateReport:
    """Run the gates for ``stack`` of ``project``.

    ``base`` None means the default ``HEAD``, tolerated when the project is not in
    a git repository (then nothing is compared and a note says so); an explicit
    base must resolve. ``new_state`` overrides the working tree's state (``rollout
    advance`` judges the state it is about to write).
    """
    now = now or utc_now()
    config = config or load_stack(stack, project)
    new_state = new_state or rollout_state(config, stack, now)
    notes: list[str] = []
    upstream_name = config.promotes_from
    upstream_state = None
    upstream_source = None
    ref = base or DEFAULT_BASE
    if evidence is not None:
        deployed_state = evidence.get("deployedState")
        deployed_source = f"the evidence ({evidence.get('deployedStateSource') or 'deployedState'})"
        if upstream_name:
            upstream_state = evidence.get("upstreamState")
            upstream_source = f"the evidence ({evidence.get('upstreamStateSource') or 'upstreamState'})"
    else:
        try:
            deployed_state = state_at_ref(stack, project, ref, now)
        except NoGitBase as err:
            if base is not None:
                raise UsageError(f"--base {base}: {err}") from None
            notes.append(
                f"no git base ({err}): nothing deployed to compare with, so the gates see no transition; "
                "pass --evidence FILE or run inside the repository"
            )
            return GateReport(stack, [], [], "none", None, notes)
        deployed_source = f"{shown_stack_file(stack)} at {ref}"
        if deployed_state is None:
            notes.append(f"{shown_stack_file(stack)} does not exist at {ref}: every service counts as never deployed")
    if upstream_name and upstream_state is None:
        try:
            upstream_state = state_at_ref(upstream_name, project, ref, now)
            upstream_source = f"{shown_stack_file(upstream_name)} at {ref}"
        except NoGitBase as err:
            notes.append(f"no upstream state for {upstream_name}: {err}")
    violations = judge(new_state, deployed_state, evidence, upstream_state, now)
    return GateReport(
        stack=stack,
        violations=violations,
        advancing=advancing_services(new_state, deployed_state),
        deployed_source=deployed_source,
        upstream_source=upstream_source,
        notes=notes,
    )


def working_tree_state(stack: str, project: Path, now: datetime | None = None) -> dict[str, Any]:
    """The rollout state of the stack file in the working tree (validated with its upstream)."""
    return rollout_state(load_stack(stack, project), stack, now)


__all__ = [
    "DEFAULT_BASE",
    "GateReport",
    "NoGitBase",
    "config_at_ref",
    "format_violation",
    "gate_report",
    "load_evidence",
    "read_state_file",
    "state_at_ref",
    "working_tree_state",
]
