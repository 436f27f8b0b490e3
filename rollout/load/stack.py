"""One loader for the stack config, from the YAML file (CLI) or pulumi.Config (program).

Both sources produce the same raw mapping of ``rollout:`` keys, with every secret
leaf replaced by a :class:`~rollout.model.config.SecretRef`, and both are validated by
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

from rollout.model import conventions
from rollout.load.charts import check_local_charts
from rollout.load.clock import validation_context
from rollout.model.config import FLAG_STRATEGIES, PercentageFlag, SecretRef, StackConfig
from rollout.model.errors import ConfigError, KeyedError

NS = conventions.CONFIG_NAMESPACE
SECRETS_KEY = "secrets"
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


def stack_file(stack: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "stacks" / f"Pulumi.{stack}.yaml"


def display_path(path: Path, root: Path | None = None) -> str:
    """The path as users see it in messages: relative to the project when inside it."""
    import os

    base = (root or project_root()).resolve()
    # The name given, not the file a symlink names: stacks/Pulumi.<stack>.yaml stays that.
    for candidate in (Path(os.path.abspath(path)), path.resolve()):
        try:
            return str(candidate.relative_to(base))
        except ValueError:
            continue
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


#: How deep collections may nest in a stack file; the deepest key of a valid one is 8 levels down.
MAX_DEPTH = 32
#: How many nodes aliases (``*name``) may add to a stack file in all, counting what they repeat:
#: 25x what a 100-service stack that shares its blocks with anchors adds (about 20,000), and
#: small enough that a file at the limit is read in well under a second (an alias bomb goes no further).
MAX_ALIAS_NODES = 500_000
#: The tags a stack file may spell out (``!!str 5``); no other tag means anything to Pulumi.
ALLOWED_TAGS = frozenset(
    {"!"} | {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}
)


class _Frame:
    __slots__ = ("mapping", "anchor", "size", "expect_key", "key", "secret", "is_key")

    def __init__(self, mapping: bool, anchor: str | None, secret: bool, is_key: bool) -> None:
        self.mapping = mapping
        self.is_key = is_key
        self.anchor = anchor
        self.size = 1
        self.expect_key = True
        self.key: Any = None
        self.secret = secret


def check_structure(text: str, shown: str) -> int:
    """Refuse, before anything is built from it, YAML whose shape no stack file has.

    Read as a stream of events (no recursion, nothing expanded), so a file that
    refers to itself (``&a [*a]``), nests deeper than :data:`MAX_DEPTH`, or
    whose aliases would add more than :data:`MAX_ALIAS_NODES` nodes (an alias
    bomb) fails in time and memory proportional to its size. Tags other than
    :data:`ALLOWED_TAGS` (``!!binary``, ``!anything``: often a clear-text value
    that starts with ``!``) and anchors or aliases on secrets are refused too.
    No message repeats a value. Returns how many nodes the aliases add.
    """
    stack: list[_Frame] = []
    sizes: dict[str, int] = {}
    added = 0
    root_secret_path = ("config", f"{NS}:{SECRETS_KEY}")
    keys: list[Any] = []

    def fail(mark: Any, problem: str) -> None:
        raise ConfigError([f"{shown}: line {mark.line + 1}, column {mark.column + 1}: {problem}"])

    def place(event: Any) -> tuple[bool, bool]:
        """(is a mapping key, lies in a secret) for the node the event starts."""
        if not stack:
            return False, False
        top = stack[-1]
        if top.mapping and top.expect_key:
            return True, top.secret
        path = tuple(keys)
        secret = top.secret or path[:2] == root_secret_path or (top.mapping and top.key == "secure")
        return False, secret

    def finish(size: int, anchor: str | None, is_key: bool, key: Any = None) -> None:
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            top = stack[-1]
            top.size += size
            if top.mapping:
                if is_key:
                    top.key = key
                    keys.append(key)
                    top.expect_key = False
                else:
                    if not top.expect_key:
                        keys.pop()
                    top.expect_key = True

    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)):
                is_key, secret = place(event)
                tag = getattr(event, "tag", None)
                if tag is not None and tag not in ALLOWED_TAGS and not (
                    isinstance(event, yaml.ScalarEvent) and event.implicit[0]
                ):
                    fail(event.start_mark, "this YAML tag is not allowed (a value that starts with ! must be quoted); "
                         "a stack file holds text, numbers, booleans, lists and mappings")
                if event.anchor is not None and secret:
                    fail(event.start_mark, "anchors and aliases are not allowed in secrets; "
                         "set each secret with `pulumi config set --secret`")
                if isinstance(event, yaml.AliasEvent):
                    if event.anchor in (f.anchor for f in stack):
                        fail(event.start_mark, f"the alias *{event.anchor} refers to a node that contains it; "
                             "a stack file cannot refer to itself")
                    size = sizes.get(event.anchor, 1)
                    added += size
                    if added > MAX_ALIAS_NODES:
                        fail(event.start_mark, f"aliases repeat more than {MAX_ALIAS_NODES} nodes in all; "
                             "write the repeated blocks out, or use fewer aliases")
                    finish(size, None, is_key)
                elif isinstance(event, yaml.ScalarEvent):
                    finish(1, event.anchor, is_key, event.value)
                else:
                    if len(stack) >= MAX_DEPTH:
                        fail(event.start_mark, f"nests deeper than {MAX_DEPTH} levels; no stack file key is that deep")
                    stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor, secret, is_key))
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                finish(frame.size, frame.anchor, frame.is_key)
    except yaml.YAMLError:
        pass  # the loader reports syntax errors with their line
    return added


# YAML 1.1 (PyYAML) and YAML 1.2 (Pulumi's Go parser) read these differently: 031 is
# 25 to one and 31 to the other, 1_000 and 1:30 are numbers to one and text to the
# other, yes/no/on/off booleans to one only. A stack file means one thing to both.
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_PLAIN_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")


def _ambiguous(node: yaml.ScalarNode, what: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None, None, f"this value is not a plain {what}: YAML readers differ on it; {_HINTS[what]}", node.start_mark
    )


_HINTS = {
    "number": "write digits without leading zeros, underscores, 0x/0o/0b or colons, or quote it",
    "boolean": "write true or false, or quote it",
}


def _strict_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    if not _PLAIN_INT.fullmatch(node.value):
        raise _ambiguous(node, "number")
    return int(node.value)


def _strict_float(loader: _StrictLoader, node: yaml.ScalarNode) -> float:
    if not _PLAIN_FLOAT.fullmatch(node.value):
        raise _ambiguous(node, "number")
    return loader.construct_yaml_float(node)


def _strict_bool(loader: _StrictLoader, node: yaml.ScalarNode) -> bool:
    if not _PLAIN_BOOL.fullmatch(node.value):
        raise _ambiguous(node, "boolean")
    return node.value.lower() == "true"


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _strict_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _strict_float)
_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _strict_bool)


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
    check_structure(text, shown)
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
    not_ciphertext: list[str] = []
    # The passphrase provider (an encryptionsalt) writes v1:<nonce>:<ciphertext>.
    passphrase = "encryptionsalt" in document
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace != NS or not name:
            continue  # another provider's config (kubernetes:context, ...): not ours to judge
        raw[name] = _mark_secure_leaves(value, f"{NS}:{name}", not_ciphertext, passphrase)
    if not_ciphertext:
        raise ConfigError(
            [f"{shown}: {where}: the value under secure: is not ciphertext; a secret is set with "
             f"`pulumi config set --secret --path '{where}' <value>`, which encrypts it" for where in not_ciphertext]
        )
    return raw


_B64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_PASSPHRASE_CIPHERTEXT = re.compile(rf"v1:(?P<nonce>{_B64}):(?P<sealed>{_B64})")
_CIPHERTEXT = re.compile(_B64)


def is_ciphertext(value: str, passphrase: bool) -> bool:
    """Whether ``value`` has the form of a Pulumi secret's ciphertext.

    The passphrase provider's is ``v1:`` a 12-byte nonce and the sealed value
    (with its 16-byte tag), each base64; the other providers' is base64 of at
    least 16 bytes. Clear text rarely has either form; an empty value never.
    """
    import base64

    if passphrase:
        match = _PASSPHRASE_CIPHERTEXT.fullmatch(value)
        return bool(match) and len(base64.b64decode(match["nonce"])) == 12 and len(base64.b64decode(match["sealed"])) >= 16
    return bool(_CIPHERTEXT.fullmatch(value)) and len(base64.b64decode(value)) >= 16


def _mark_secure_leaves(value: Any, path: str, not_ciphertext: list[str], passphrase: bool) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            if not is_ciphertext(value["secure"], passphrase):
                not_ciphertext.append(path)
            return SecretRef(path, None)
        return {k: _mark_secure_leaves(v, f"{path}.{k}", not_ciphertext, passphrase) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secure_leaves(v, f"{path}[{i}]", not_ciphertext, passphrase) for i, v in enumerate(value)]
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
        return StackConfig.model_validate(raw, context=validation_context())
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
        elif _PLAIN_KEY.fullmatch(str(part)):
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
        from rollout.model import config as cfg

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
