"""One loader for the stack config, from the YAML file (CLI) or pulumi.Config (program).

Both sources produce the same raw mapping of ``rollout:`` keys, with every secret
leaf replaced by a :class:`~rollout.config.SecretRef`, and both are validated by
:func:`validate`, so the CLI and ``pulumi up`` accept and refuse exactly the same
configs, with the same messages.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ValidationError

from rollout import conventions
from rollout.charts import check_local_charts
from rollout.config import FLAG_STRATEGIES, PercentageFlag, SecretRef, StackConfig
from rollout.errors import ConfigError, KeyedError

NS = conventions.CONFIG_NAMESPACE
SECRETS_KEY = "secrets"
#: Top-level keys Pulumi itself writes into a stack file besides ``config``.
PULUMI_FILE_KEYS = {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}


#: Set by rollout.engine to the project the engine runs (a copy of the
#: repository judges its own stacks, not the installed package's).
PROJECT_ENV = "ROLLOUT_PROJECT_DIR"


def project_root() -> Path:
    """The folder holding Pulumi.yaml: $ROLLOUT_PROJECT_DIR, else the repository of this package."""
    configured = os.environ.get(PROJECT_ENV)
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parent.parent


def stack_file(stack: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "stacks" / f"Pulumi.{stack}.yaml"


def display_path(path: Path, root: Path | None = None) -> str:
    """The path as users see it in messages: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to((root or project_root()).resolve()))
    except ValueError:
        return str(path)


# --- reading the YAML file ----------------------------------------------------------


# libyaml's parser when PyYAML was built with it: the same documents, several
# times faster than the pure-Python one (a stack file is read a few times per command).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):
    """SafeLoader that refuses duplicate keys, which YAML parsers differ on.

    A value its explicit tag cannot hold (``!!int hunter2``) is an error at its
    line that does not repeat the value: it may be a secret typed in clear.
    """

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError):
            raise yaml.constructor.ConstructorError(
                None, None, f"the value cannot be read as its tag {node.tag} says", node.start_mark
            ) from None


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _timestamps_as_text(loader: _StrictLoader, node: yaml.ScalarNode) -> str:
    # Pulumi hands timestamps to the program as text; do the same here.
    return loader.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamps_as_text)


def read_stack_file(path: Path, root: Path | None = None) -> dict[str, Any]:
    """Parse a stack file into its raw ``rollout:`` mapping (namespace stripped).

    Secret leaves (``{secure: ...}``) become SecretRefs without a value.
    Messages name the file relative to ``root`` (the project).
    """
    shown = display_path(path, root)
    try:
        data = path.read_bytes()
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
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = err.problem or err.context or "invalid YAML"
        raise ConfigError([f"{shown}: {where}{problem}"]) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"{shown}: invalid YAML: {err}"]) from None
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
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace != NS or not name:
            continue  # another provider's config (kubernetes:context, ...): not ours to judge
        raw[name] = _mark_secure_leaves(value, f"{NS}:{name}")
    return raw


def _mark_secure_leaves(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            return SecretRef(path, None)
        return {k: _mark_secure_leaves(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secure_leaves(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# --- reading pulumi.Config ---------------------------------------------------------


def read_pulumi_config() -> dict[str, Any]:
    """The raw ``rollout:`` mapping as the Pulumi engine hands it to the program.

    Pulumi passes every value as text (objects as JSON). Values of the
    ``rollout:secrets`` key, which the engine marks secret, become SecretRefs
    holding the decrypted value.
    """
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    raw: dict[str, Any] = {}
    for key, text in sorted(merged.items()):
        namespace, _, name = key.partition(":")
        if namespace != NS or not name:
            continue
        value = _decode(text)
        if runtime_config.is_config_secret(key):
            value = _wrap_secret_leaves(value, key) if name == SECRETS_KEY else SecretRef(key, None)
        raw[name] = value
    return raw


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _wrap_secret_leaves(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _wrap_secret_leaves(v, f"{path}.{k}") for k, v in value.items()}
    if value is None:
        return None
    return SecretRef(path, value if isinstance(value, str) else json.dumps(value))


# --- validation --------------------------------------------------------------------


def validate(raw: dict[str, Any], source: str) -> StackConfig:
    """Validate a raw ``rollout:`` mapping; raise ConfigError naming ``source``."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as err:
        problems = [_describe(error, source) for error in err.errors(include_url=False)]
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
    from alerts.catalogue import unknown_alert_names

    unknown = unknown_alert_names(config, config.alerting.priorities)
    if unknown:
        raise ConfigError(
            [f"{source}: {NS}:alerting.priorities.{name}: no alert of this stack is named {name!r}" for name in unknown]
        )


def load_stack(stack: str, root: Path | None = None) -> StackConfig:
    return load_file(stack_file(stack, root), root)


def check_upstream(config: StackConfig, path: Path, root: Path | None = None) -> None:
    """A stack never leads the one it promotes from: percentage flags included."""
    if not config.promotes_from:
        return
    shown = display_path(path, root)
    upstream_path = path.parent / f"Pulumi.{config.promotes_from}.yaml"
    if not upstream_path.exists():
        raise ConfigError(
            [f"{shown}: rollout:promotesFrom: {config.promotes_from!r} has no stack file {display_path(upstream_path, root)}"]
        )
    upstream = validate(read_stack_file(upstream_path, root), display_path(upstream_path, root))
    problems = []
    for key, flag in config.flags.items():
        theirs = upstream.flags.get(key)
        if isinstance(flag, PercentageFlag) and isinstance(theirs, PercentageFlag):
            if flag.percentage > theirs.percentage:
                problems.append(
                    f"{shown}: {NS}:flags.{key}.percentage: {flag.percentage} is above "
                    f"{config.promotes_from}'s {theirs.percentage}; a stack never leads the one it promotes from"
                )
    if problems:
        raise ConfigError(problems)


def _describe(error: dict[str, Any], source: str) -> str:
    loc = list(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, KeyedError):
        loc.extend(cause.path)
    key = _format_loc(_drop_union_tags(loc))
    message = _message(error, loc, shown=_kind if loc[:1] == [SECRETS_KEY] else _show)
    return f"{source}: {NS}:{key}: {message}" if key else f"{source}: {message}"


def _drop_union_tags(loc: list[str | int]) -> list[str | int]:
    out: list[str | int] = []
    for index, part in enumerate(loc):
        # flags.<key>.<strategy tag>.<field>: the tag is pydantic's, not the user's.
        if index >= 2 and loc[index - 2] == "flags" and part in FLAG_STRATEGIES:
            continue
        out.append(part)
    return out


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$-]+$")


def _format_loc(loc: list[str | int]) -> str:
    """``flags.aatc.percentage``, ``services[0].name``; odd keys quoted: ``flags['a b']``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


def _show(value: Any) -> str:
    if isinstance(value, SecretRef):
        return "a secret"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)


def _kind(value: Any) -> str:
    """What a value is, without the value: for rollout:secrets, whose values are never shown."""
    if isinstance(value, SecretRef):
        return "a secret"
    if isinstance(value, str):
        return "a text in clear"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return _show(value) if isinstance(value, (dict, list)) or value is None else "a value"


def _message(error: dict[str, Any], loc: list[str | int], shown: Callable[[Any], str] = _show) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, KeyedError):
        return cause.message
    if kind == "value_error" and cause is not None:
        return str(cause)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        suffix = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown key{suffix}"
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "dict_type"):
        if loc == [SECRETS_KEY]:
            return (f"{shown(value)} is not a mapping; it maps each secret's name to its value, set with "
                    f"`pulumi config set --secret --path '{NS}:{SECRETS_KEY}.<name>' <value>`")
        return f"{shown(value)} is not a mapping"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "literal_error":
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{shown(value)} is not allowed; allowed: {allowed}"
    if kind == "unknown_strategy":
        strategy = value.get("strategy") if isinstance(value, dict) else None
        shown = "no strategy" if strategy is None else f"{strategy!r} is not a known strategy"
        return f"{shown}; allowed: {', '.join(FLAG_STRATEGIES)}"
    if isinstance(value, SecretRef):
        return "is stored as a secret, but only keys under rollout:secrets may be secrets"
    expected = error["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return f"{shown(value)} is not {expected}" if error["msg"].startswith("Input should be") else f"{shown(value)}: {expected}"


def _allowed_keys(loc: list[str | int]) -> list[str]:
    """Key names a model at ``loc`` accepts, for "unknown key" messages."""
    model: Any = StackConfig
    for part in loc:
        model = _child_model(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or name for name, f in model.model_fields.items())
    return []


def _child_model(model: Any, part: str | int) -> Any:
    import typing

    if isinstance(model, type) and issubclass(model, BaseModel):
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return strip_annotation(field.annotation)
        return None
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin in (list, dict) and args:
        return strip_annotation(args[-1])
    if isinstance(part, str) and part in FLAG_STRATEGIES:
        from rollout import config as cfg

        return {
            "all_at_once": cfg.AllAtOnceFlag,
            "percentage": cfg.PercentageFlag,
            "progressive": cfg.ProgressiveFlag,
            "canary": cfg.CanaryFlag,
        }[part]
    return None


def strip_annotation(annotation: Any) -> Any:
    """The core type of a field's annotation, with Annotated and Optional removed."""
    import types
    import typing

    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
