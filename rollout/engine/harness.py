"""Run the real program for a stack under Pulumi's own mocks, offline.

No Pulumi CLI, cluster or network is needed: ``pulumi.runtime.set_mocks`` stands
in for the engine, and every resource the program registers is recorded with
its type, name, inputs (secrets marked), parent and options. ``rollout check``,
``rollout render`` and the tests all go through :func:`run_program`.

Pulumi's runtime settings are process-global, so runs are serialised with a
lock and each run installs fresh mocks.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rollout.model import conventions
from rollout.load.secrets import NS, SECRETS_KEY
from rollout.load.stack import project_root, read_stack_file, stack_file
from rollout.model.config import SecretRef

_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_LOCK = threading.Lock()


@dataclass
class DeclaredResource:
    """A resource as the program registered it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    #: Inputs with secrets unwrapped to their values.
    inputs: dict[str, Any]
    #: Dotted paths of the inputs that were marked secret.
    secret_paths: set[str] = field(default_factory=set)
    protect: bool = False
    retain_on_delete: bool = False
    dependencies: list[str] = field(default_factory=list)
    provider: str = ""

    @property
    def parent_name(self) -> str:
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""


@dataclass
class ProgramRun:
    """What one offline run of the program declared and exported."""

    stack: str
    resources: list[DeclaredResource]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    #: The secret values the program was handed (placeholders or test values).
    secret_values: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> DeclaredResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]


def _unwrap(value: Any, path: str, secrets: set[str]) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            secrets.add(path)
            return _unwrap(value.get("value"), path, set())
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


def config_for_mocks(
    stack: str, root: Path | None = None, secret_values: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The config map and secret keys Pulumi would hand the program for ``stack``.

    The CLI cannot decrypt ``secure:`` values, so each secret becomes its
    placeholder, or the value given in ``secret_values`` (keyed by the secret's
    name under rollout:secrets) for tests that trace a known value.
    """
    raw = read_stack_file(stack_file(stack, root), root)
    secret_values = secret_values or {}

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretRef):
            name = value.path.rsplit(".", 1)[-1]
            return secret_values.get(name, value.placeholder)
        if isinstance(value, dict):
            return {k: reveal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [reveal(v) for v in value]
        return value

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for name, value in raw.items():
        key = f"{NS}:{name}"
        plain = reveal(value)
        config[key] = plain if isinstance(plain, str) else json.dumps(plain)
        if name == SECRETS_KEY or _holds_secret(value):
            secret_keys.append(key)
    return config, secret_keys


def _holds_secret(value: Any) -> bool:
    if isinstance(value, SecretRef):
        return True
    if isinstance(value, dict):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False


def run_program(
    stack: str,
    root: Path | None = None,
    *,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    secret_values: dict[str, str] | None = None,
    program: Callable[[], None] | None = None,
    preview: bool = True,
    record: list[DeclaredResource] | None = None,
) -> ProgramRun:
    """Run the program for ``stack`` under mocks and return what it declared.

    ``config``/``secret_keys`` replace the stack file's config (for tests of
    broken configs); by default they come from ``stacks/Pulumi.<stack>.yaml``.
    A config error surfaces as :class:`rollout.model.errors.ConfigError`, raised before
    any resource is registered. ``record``, when given, receives every resource
    as it is registered, so a caller can see what was declared before a failure.
    """
    # Pulumi's runtime loads only when a program runs, not for the commands that never run one.
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from rollout.engine import program as rollout_program

    if config is None:
        config, keys = config_for_mocks(stack, root, secret_values)
        secret_keys = keys if secret_keys is None else secret_keys
    recorded: list[DeclaredResource] = record if record is not None else []
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    class _Mocks(pulumi_mocks.Mocks):
        def new_resource(self, args: pulumi_mocks.MockResourceArgs):
            state = dict(args.inputs)
            if args.typ == "pulumi-python:dynamic:Resource" and "length" in state:
                # components.password.GeneratedPassword: its provider draws the
                # value on create; a recognisable stand-in lets tests trace
                # where the generated secret goes.
                state["result"] = f"generated-password-{args.name}"
            return f"{args.name}-id", state

        def call(self, args: pulumi_mocks.MockCallArgs):
            return {}

    class _Monitor(pulumi_mocks.MockMonitor):
        def RegisterResource(self, request):  # noqa: N802 - gRPC method name
            response = super().RegisterResource(request)
            if request.type == "pulumi:pulumi:Stack":
                return response
            from google.protobuf import json_format  # loaded with the runtime above

            secrets: set[str] = set()
            raw = json_format.MessageToDict(request.object)
            recorded.append(
                DeclaredResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=_unwrap(raw, "", secrets),
                    secret_paths=secrets,
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    dependencies=list(request.dependencies),
                    provider=request.provider,
                )
            )
            return response

    with _LOCK:
        mocks = _Mocks()
        pulumi_mocks.set_mocks(
            mocks, project="rollout", stack=stack, preview=preview, monitor=_Monitor(mocks)
        )
        set_all_config(config, secret_keys or [])
        try:
            target = program or (lambda: rollout_program.run(root=root))
            _sync_await(run_pulumi_func(target))
            root_stack = settings.get_root_resource()
            for key, value in dict(getattr(root_stack, "outputs", {}) or {}).items():
                output = pulumi.Output.from_input(value)
                resolved = _sync_await(output.future())
                outputs[key] = resolved
                if _sync_await(output.is_secret()):
                    secret_outputs.add(key)
        finally:
            settings.reset_options()
            set_all_config({}, [])
    handed = [
        leaf
        for key in secret_keys or []
        for leaf in _leaves(json.loads(config[key]) if config[key][:1] in "{[" else config[key])
    ]
    return ProgramRun(
        stack=stack, resources=recorded, outputs=outputs, secret_outputs=secret_outputs, secret_values=handed
    )


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value] if isinstance(value, str) and value else []


def default_root() -> Path:
    return project_root()


__all__ = ["DeclaredResource", "ProgramRun", "run_program", "config_for_mocks", "conventions"]
