"""One loader for the stack config, from the YAML file (CLI) or pulumi.Config (program).

Both sources produce the same raw mapping of ``rollout:`` keys, with every secret
leaf replaced by a :class:`~rollout.model.config.SecretRef`, and both are validated by
:func:`validate`, so the CLI and ``pulumi up`` accept and refuse exactly the same
configs, with the same messages.

The parts: :mod:`rollout.load.strict_yaml` reads the YAML, :mod:`rollout.load.secrets`
marks the secrets (and reads Pulumi's runtime config), :mod:`rollout.load.messages`
words the model's errors. This module finds the stack files and puts them together.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollout.load.charts import check_local_charts
from rollout.load.clock import validation_context
from rollout.load.messages import describe
from rollout.load.secrets import NS, mark_secure_leaves
from rollout.load.strict_yaml import load_strict
from rollout.model import conventions
from rollout.model.config import PercentageFlag, StackConfig
from rollout.model.errors import ConfigError

#: Top-level keys Pulumi itself writes into a stack file besides ``config``.
PULUMI_FILE_KEYS = {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}


#: Set by rollout.engine.wrapper to the project the engine runs (a copy of the
#: repository judges its own stacks, not the installed package's).
PROJECT_ENV = "ROLLOUT_PROJECT_DIR"


def project_root() -> Path:
    """The folder holding Pulumi.yaml: $ROLLOUT_PROJECT_DIR, else the repository of this package."""
    configured = os.environ.get(PROJECT_ENV)
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parents[2]


def shown_stack_file(stack: str) -> str:
    """The stack file as messages name it, relative to the project: ``stacks/Pulumi.<stack>.yaml``."""
    return conventions.STACK_FILE.format(stack=stack)


def stack_file(stack: str, root: Path | None = None) -> Path:
    return (root or project_root()) / shown_stack_file(stack)


def stack_names(project: Path) -> list[str]:
    """Every stack of the project (``stacks/Pulumi.<stack>.yaml``), sorted."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project / "stacks").glob("Pulumi.*.yaml"))


def display_path(path: Path, root: Path | None = None) -> str:
    """The path as users see it in messages: relative to the project when inside it."""
    base = (root or project_root()).resolve()
    # The name given, not the file a symlink names: stacks/Pulumi.<stack>.yaml stays that.
    for candidate in (Path(os.path.abspath(path)), path.resolve()):
        try:
            return str(candidate.relative_to(base))
        except ValueError:
            continue
    return str(path)


#: Stack files parsed in this process, by path, project and content: a command reading a fleet
#: parses each file once, however many stacks ask about it (the bytes are read every time, so an
#: edit is never missed).
_PARSED: dict[tuple, dict[str, Any]] = {}
_PARSED_MAX = 512


def forget_parsed() -> None:
    """Forget the stack files parsed so far: the next read parses, as a new process's first does."""
    _PARSED.clear()


def read_stack_file(path: Path, root: Path | None = None) -> dict[str, Any]:
    """Parse a stack file into its raw ``rollout:`` mapping (namespace stripped).

    Secret leaves (``{secure: ...}``) become SecretRefs without a value.
    Messages name the file relative to ``root`` (the project).
    """
    try:
        data = path.read_bytes()
    except OSError:
        return _read_stack_file(path, root, None)  # says what is wrong with the file
    key = (str(path), str(root), hashlib.sha256(data).digest())
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = _read_stack_file(path, root, data)
    return copy.deepcopy(_PARSED[key])


def _read_stack_file(path: Path, root: Path | None, data: bytes | None) -> dict[str, Any]:
    shown = display_path(path, root)
    try:
        data = path.read_bytes() if data is None else data
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such stack file"]) from None
    except OSError as err:
        raise ConfigError([f"{shown}: cannot be read: {err.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{shown}: is not a UTF-8 text file; a stack file is YAML"]) from None
    if "\x00" in text:
        raise ConfigError([f"{shown}: is a binary file; a stack file is YAML"])
    document = load_strict(text, shown)
    if document is None:
        raise ConfigError([f"{shown}: is empty; a stack file holds a config: mapping of rollout: keys"])
    if not isinstance(document, dict):
        raise ConfigError([f"{shown}: must be a mapping with a config: key, not {type(document).__name__}"])
    unknown = sorted(str(k) for k in document if k not in PULUMI_FILE_KEYS)
    if unknown:
        raise ConfigError(
            [f"{shown}: {k}: unknown key; allowed: {', '.join(sorted(PULUMI_FILE_KEYS))}" for k in unknown]
        )
    config = document.get("config")
    if not isinstance(config, dict):
        raise ConfigError([f"{shown}: config: must be a mapping of rollout: keys"])
    raw: dict[str, Any] = {}
    not_ciphertext: list[str] = []
    # The passphrase provider (an encryptionsalt) writes v1:<nonce>:<ciphertext>.
    passphrase = "encryptionsalt" in document
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace != NS or not name:
            continue  # another provider's config (kubernetes:context, ...): not ours to judge
        raw[name] = mark_secure_leaves(value, f"{NS}:{name}", not_ciphertext, passphrase)
    if not_ciphertext:
        raise ConfigError(
            [f"{shown}: {where}: the value under secure: is not ciphertext; a secret is set with "
             f"`pulumi config set --secret --path '{where}' <value>`, which encrypts it" for where in not_ciphertext]
        )
    return raw


# --- validation --------------------------------------------------------------------


def validate(raw: dict[str, Any], source: str) -> StackConfig:
    """Validate a raw ``rollout:`` mapping; raise ConfigError naming ``source``."""
    try:
        return StackConfig.model_validate(raw, context=validation_context())
    except ValidationError as err:
        problems = [describe(error, source) for error in err.errors(include_url=False)]
        raise ConfigError(sorted(dict.fromkeys(problems))) from None


def load_file(path: Path, root: Path | None = None) -> StackConfig:
    """Load and validate a stack file, including checks against its upstream stack."""
    raw = read_stack_file(path, root)
    config = validate(raw, display_path(path, root))
    check_alert_names(config, display_path(path, root))
    check_local_charts(config, display_path(path, root), root or project_root())
    check_upstream(config, path, root)
    return config


def check_alert_names(config: StackConfig, source: str) -> None:
    """Priority overrides must name alerts of the stack's catalogue."""
    # The catalogue imports every alert module: not at start-up of every command.
    from alerts.catalogue import unknown_alert_names

    unknown = unknown_alert_names(config, config.alerting.priorities)
    if unknown:
        raise ConfigError(
            [f"{source}: {NS}:alerting.priorities.{name}: no alert of this stack is named {name!r}" for name in unknown]
        )


def load_stack(stack: str, root: Path | None = None) -> StackConfig:
    return load_file(stack_file(stack, root), root)


def _raw_upstreams(path: Path, root: Path | None) -> tuple[str, ...]:
    """The stacks a stack file's ``promotesFrom`` names, read without validating the rest (a walk of the graph)."""
    value = read_stack_file(path, root).get("promotesFrom")
    if isinstance(value, str):
        return (value,)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def check_upstream(config: StackConfig, path: Path, root: Path | None = None) -> None:
    """Every stack this one promotes from has a file, the graph has no cycle through this stack,
    and the stack never leads one it promotes from: percentage flags included."""
    if not config.upstreams:
        return
    shown = display_path(path, root)
    key = f"{NS}:promotesFrom"
    # Beside this stack's file, wherever that is (a test's copy of stacks/ too).
    beside = lambda name: path.parent / Path(shown_stack_file(name)).name  # noqa: E731
    for name in config.upstreams:
        upstream_path = beside(name)
        if not upstream_path.exists():
            known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
            raise ConfigError(
                [f"{shown}: {key}: {name!r} has no stack file {display_path(upstream_path, root)}; "
                 f"stacks: {', '.join(known)}"]
            )
    # A cycle through this stack: follow promotesFrom from file to file, each read once.
    this = path.name[len("Pulumi."):-len(".yaml")]
    parent = {name: this for name in config.upstreams}
    queue = list(config.upstreams)
    while queue:
        name = queue.pop(0)
        further = (this,) if name == this else ()
        if name != this and beside(name).exists():
            try:
                further = _raw_upstreams(beside(name), root)
            except ConfigError:
                further = ()  # that stack's own file says what is wrong with it
        for upper in further:
            if upper == this:
                chain = [name]
                while chain[-1] != this:
                    chain.append(parent[chain[-1]])
                trail = " → ".join([this, *reversed(chain[:-1]), this])
                raise ConfigError([f"{shown}: {key}: makes a cycle ({trail}, each promoting from the next); "
                                   "the fleet's graph must have none"])
            if upper not in parent:
                parent[upper] = name
                queue.append(upper)
    problems = []
    for name in config.upstreams:
        upstream_path = beside(name)
        upstream = validate(read_stack_file(upstream_path, root), display_path(upstream_path, root))
        for flag_key, flag in config.flags.items():
            theirs = upstream.flags.get(flag_key)
            if isinstance(flag, PercentageFlag) and isinstance(theirs, PercentageFlag):
                if flag.percentage > theirs.percentage:
                    problems.append(
                        f"{shown}: {NS}:flags.{flag_key}.percentage: {flag.percentage} is above "
                        f"{name}'s {theirs.percentage}; a stack never leads the one it promotes from"
                    )
    if problems:
        raise ConfigError(problems)
