"""Pydantic's validation errors as one line each: the file, the key, what is wrong and what is allowed.

``stacks/Pulumi.production.yaml: rollout:flags.aatc.percentage: 130 is not between
0 and 100``. Values under ``rollout:secrets`` are never shown, only what kind of
value they are.
"""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any, Callable

from pydantic import BaseModel

from rollout.load.secrets import NS, SECRETS_KEY
from rollout.model.config import FLAG_MODELS, FLAG_STRATEGIES, SecretRef, StackConfig
from rollout.model.errors import KeyedError


def describe(error: dict[str, Any], source: str) -> str:
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
    if isinstance(model, type) and issubclass(model, BaseModel):
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return strip_annotation(field.annotation)
        return None
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin in (list, dict) and args:
        return strip_annotation(args[-1])
    if isinstance(part, str) and part in FLAG_MODELS:
        return FLAG_MODELS[part]
    return None


def strip_annotation(annotation: Any) -> Any:
    """The core type of a field's annotation, with Annotated and Optional removed."""
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
