"""docs/configuration.md, generated from the config model's field docstrings.

Regenerate with ``.venv/bin/python -m rollout.build.reference > docs/configuration.md``;
a test fails when the committed file differs, so a knob cannot go undocumented.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap
import typing
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from rollout.model import config as cfg
from rollout.model.durations import format_duration
from rollout.load.messages import strip_annotation

INTRO = """\
# Configuration reference

<!-- Generated from rollout/model/config/ by `python -m rollout.build.reference`; do not edit. -->

Every setting lives in `stacks/Pulumi.<stack>.yaml` under `config:`, as a
`rollout:<key>` entry; the stack files are commented examples. The same model
validates the file in `rollout` commands and the config in `pulumi up`: unknown
keys are refused, and every error names the file, the key and what is allowed.

Durations are written like Prometheus': a number and a unit (`ms`, `s`, `m`, `h`,
`d`, `w`), e.g. `30s`, `5m`, `1h30m`, `7d`. Times are ISO 8601 in UTC
(`2026-11-20T09:00:00Z`). Secrets go only under `rollout:secrets`, set with
`pulumi config set --secret --path 'rollout:secrets.<name>' <value>`.
"""


@functools.cache
def _docstrings(model: type) -> dict[str, str]:
    """The docstring under each field of ``model`` and its bases: the string statement right
    after the field's annotated assignment. Read here, from the source, and not by pydantic at
    import: every command and every ``pulumi up`` would pay for parsing the model's source."""
    found: dict[str, str] = {}
    for cls in reversed([c for c in model.__mro__ if issubclass(c, BaseModel) and c is not BaseModel]):
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        for statement, following in zip(body, body[1:]):
            if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def description(model: type[BaseModel], name: str) -> str | None:
    """The description of ``model``'s field ``name``: its ``description=``, else its docstring."""
    field = model.model_fields[name]
    return field.description or _docstrings(model).get(name)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the core type, whether it is a list) with Annotated and Optional removed."""
    core = strip_annotation(annotation)
    if typing.get_origin(core) is list:
        return strip_annotation(typing.get_args(core)[0]), True
    return core, False

def _type_name(annotation: Any, model_hint: Any) -> str:
    core, is_list = _unwrap(annotation)
    if model_hint is not None and isinstance(core, type) and issubclass(core, BaseModel):
        name = "mapping"
    elif typing.get_origin(core) is typing.Literal:
        name = " \\| ".join(f"`{v}`" for v in typing.get_args(core))
    elif core is cfg.SecretRef:
        name = "secret"
    elif core is timedelta:
        name = "duration"
    elif typing.get_origin(core) is dict:
        name = "mapping"
    else:
        name = getattr(core, "__name__", str(core)).replace("datetime", "time")
    return f"list of {name}" if is_list else name


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _markdown(text: str | None) -> str:
    """Docstring text (reStructuredText literals) as one Markdown line."""
    return " ".join((text or "").split()).replace("``", "`")


def _rows(model: type[BaseModel], prefix: str, rows: list[str], nested: list[tuple[str, type[BaseModel]]]) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}.{field.alias or name}" if prefix else (field.alias or name)
        core, is_list = _unwrap(field.annotation)
        sub = core if isinstance(core, type) and issubclass(core, BaseModel) else None
        about = _markdown(description(model, name)).replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(field.annotation, sub)} | {_default(field)} | {about} |")
        if sub is not None:
            nested.append((f"{key}[]" if is_list else key, sub))


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    _rows(model, prefix, lines, nested)
    while nested:
        path, sub = nested.pop(0)
        more: list[tuple[str, type[BaseModel]]] = []
        _rows(sub, path, lines, more)
        nested[0:0] = more
    return lines


EXISTING_OPERATOR = """\
### With an operator already in the cluster (`monitoring.install: false`)

The stack then deploys only what is its own, all in `kubernetes.namespace`: its
PrometheusRules, ServiceMonitors and Probes, its routing as an `AlertmanagerConfig`
named `rollout` (receivers, routes P0–P4, inhibitions, the rollback webhook with its
bearer token, the heartbeat) with the credentials in the Secret `rollout-alertmanager`
it references, and, unless `monitoring.existing.blackboxExporter` names one, a
blackbox exporter for the Probes. Every series the rules, alerts, gates and
dashboards read is scoped to the stack's namespace, so stacks sharing the
Prometheus never mix: give each stack its own namespace.

Prerequisites, each checked as [operations](operations.md#an-operator-already-in-the-cluster) shows:
the Prometheus Operator's CRDs (`monitoring.coreos.com`, AlertmanagerConfig
`v1alpha1` included); a Prometheus whose `ruleSelector`, `serviceMonitorSelector`
and `probeSelector` match `monitoring.existing.labels` and whose namespace selectors
include the stack's namespace; an Alertmanager whose `alertmanagerConfigSelector`
and `alertmanagerConfigNamespaceSelector` select the stack's AlertmanagerConfig,
with the matcher strategy `monitoring.existing.matcherStrategy`
(kube-prometheus-stack's defaults select all of them); and a Prometheus that
sends its alerts to that Alertmanager.
"""


def render() -> str:
    parts = [INTRO]
    for name, field in cfg.StackConfig.model_fields.items():
        key = field.alias or name
        core, _ = _unwrap(field.annotation)
        parts.append(f"## `rollout:{key}`\n")
        default = _default(field)
        note = "Required." if default == "required" else ("" if default == "see below" else f"Default: {default}.")
        parts.append(f"{_markdown(description(cfg.StackConfig, name))} {note}".rstrip() + "\n")
        if isinstance(core, type) and issubclass(core, BaseModel):
            parts.append("\n".join(_table(core, key)) + "\n")
            if key == "monitoring":
                parts.append(EXISTING_OPERATOR)
        elif key == "flags":
            parts.append(
                "Each flag is `rollout:flags.<key>` with a `strategy`; the keys allowed depend on it. "
                "The safety flags (`emergency_shutdown`, `read_only_mode`, `maintenance_mode`) take "
                "`all_at_once` only, and switching one on needs a `reason`.\n"
            )
            for strategy, model in cfg.FLAG_MODELS.items():
                parts.append(f"### strategy `{strategy}`\n\n{_markdown(model.__doc__)}\n")
                parts.append("\n".join(_table(model, "flags.<key>")) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
