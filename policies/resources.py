"""What a policy sees: a resource's type, name and inputs, and the run's context.

Shared by the policies of policies/rules.py and policies/production.py, and by
their runners (rollout/engine/policy_runner.py under Pulumi's mocks,
policies/pack.py under CrossGuard).
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from rollout.model import conventions as c

STATE_STASH = c.STATE_STASH
FLAGS_STASH = "rollout-flags-document"
STASH = "pulumi:index:Stash"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"


@dataclass(frozen=True)
class Resource:
    """A resource as a policy sees it."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""


@dataclass
class Context:
    """What a run of the policies knows besides the resources."""

    now: datetime
    #: Policy config, as CrossGuard passes it: evidence, deployedState, upstreamState.
    config: Mapping[str, Any] = field(default_factory=dict)
    #: Decrypted secret values, when the runner knows them (under mocks).
    secret_values: tuple[str, ...] = ()
    #: Input paths the program marked secret, by resource URN (under mocks).
    secret_paths: Mapping[str, set[str]] = field(default_factory=dict)
    #: The deployed state's tier when the runner knows it apart from the config (``rollout check``).
    deployed_tier: str | None = None


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str
    mandatory: bool


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    remediation: str
    #: True: mandatory everywhere (the gates). False: mandatory in production only.
    always_mandatory: bool
    check: Callable[[list[Resource], Context], Iterable[tuple[str, str]]]

    def mandatory(self, tier: str | None) -> bool:
        return self.always_mandatory or tier == "production"


# --- reading the resources -------------------------------------------------------


def whole_numbers(value: Any) -> Any:
    """``value`` with every integral float made an int again.

    CrossGuard hands resource inputs and policy config over as protobuf Structs,
    whose only number is a double: a weight of 10 arrives as 10.0, and the gates
    rightly refuse a stored state whose weights are not integers.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: whole_numbers(v) for k, v in value.items()}
    if _is_list(value):
        return [whole_numbers(v) for v in value]
    return value


def _is_list(value: Any) -> bool:
    # CrossGuard wraps lists in a Sequence proxy that is no list or tuple.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def rollout_state(resources: list[Resource]) -> dict | None:
    for resource in resources:
        if resource.type == STASH and resource.name == STATE_STASH:
            value = resource.props.get("input")
            return whole_numbers(json.loads(value) if isinstance(value, str) else value)
    return None


def flag_document(resources: list[Resource]) -> dict | None:
    for resource in resources:
        if resource.type == CONFIGMAP and c.FLAGS_FILE_NAME in (resource.props.get("data") or {}):
            return json.loads(resource.props["data"][c.FLAGS_FILE_NAME])
        if resource.type == STASH and resource.name == FLAGS_STASH:
            value = resource.props.get("input")
            return json.loads(value) if isinstance(value, str) else value
    return None


def _containers(resource: Resource) -> list[dict]:
    if resource.type == DEPLOYMENT:
        return list(((resource.props.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [])
    return []


def _images(resources: list[Resource]) -> Iterable[tuple[str, str]]:
    for resource in resources:
        for container in _containers(resource):
            yield resource.name, str(container.get("image", ""))
        if resource.type == REMOTE_IMAGE:
            yield resource.name, str(resource.props.get("name", ""))


#: Where ``rollout stage`` writes a stack's pack config (relative to the project).
STAGED_CONFIG = "build/policy-config-{stack}.json"
#: The keys of the gates' config.
GATE_KEYS = ("evidence", "deployedState", "deployedStateSource", "upstreamState", "upstreamStateSource", "changedFiles")


def staged_config(project: Path, stack: str) -> dict | None:
    """The gates' config ``rollout stage`` wrote for ``stack``, when it was written after the stack
    file's last change (so a plain ``pulumi preview --policy-pack policies`` after ``rollout stage``
    judges with its evidence); None when there is none, it is older, or it is not a pack config."""
    path = project / STAGED_CONFIG.format(stack=stack)
    stack_path = project / "stacks" / f"Pulumi.{stack}.yaml"
    try:
        if not stack_path.is_file() or path.stat().st_mtime < stack_path.stat().st_mtime:
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    for value in document.values():
        if isinstance(value, dict) and any(key in value for key in GATE_KEYS):
            return value
    return None
