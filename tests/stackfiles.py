"""Stack files the tests write for themselves.

The shipped stacks in stacks/ are a team's live configuration: every rollout
step edits them (a new canary image, a rollback, an advance), so a test that
exercises behaviour never reads their weights, images or dates. It builds its
own project in a temporary directory from the reference project of
tests/fixtures/project/ (a Pulumi.yaml and the four example stacks, frozen in a
known rollout state: staging's canary at 10 % since 2026-11-18T09:00Z on the
`safe` plan, production's at 5 %), then changes what the test is about:

    project = build_project(tmp_path)                       # the reference project
    set_history(project, "staging", [(0, "2026-11-25T00:00:00Z")])
    set_service(project, "staging", canary={"image": "ghcr.io/example/genesis:1.6.0"})
    config = load_stack("staging", project)

The `project` fixture of conftest.py is `build_project(tmp_path)`. Tests of the
shipped stacks themselves check only what holds for any valid stack: they load,
render, and pass their own policies.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

#: The reference project: a frozen copy of the example stacks, never edited by a rollout.
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "project"
#: The service every reference stack ships.
SERVICE = "genesis"


def build_project(dest: Path) -> Path:
    """Write the reference project (Pulumi.yaml and stacks/) into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "Pulumi.yaml", dest / "Pulumi.yaml")
    shutil.copytree(FIXTURE / "stacks", dest / "stacks", dirs_exist_ok=True)
    return dest


def stack_path(project: Path, stack: str) -> Path:
    return project / "stacks" / f"Pulumi.{stack}.yaml"


def edit_stack(project: Path, stack: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """Load a stack file of ``project``, apply ``change`` to its config mapping, write it back.

    The file is re-dumped: its comments are gone. Tests of comment keeping edit
    with the rollout commands instead.
    """
    path = stack_path(project, stack)
    document = yaml.safe_load(path.read_text())
    change(document["config"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _service(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in config["rollout:services"] if s["name"] == name)


def set_history(project: Path, stack: str, entries: Iterable[tuple], service: str = SERVICE) -> Path:
    """Replace a service's rollout history with ``(weight, startedAt[, reason])`` entries."""

    def change(config):
        history = []
        for weight, started, *reason in entries:
            entry = {"weight": weight, "startedAt": started}
            if reason:
                entry["reason"] = reason[0]
            history.append(entry)
        _service(config, service)["rollout"]["history"] = history

    return edit_stack(project, stack, change)


def set_service(project: Path, stack: str, service: str = SERVICE, **fields: Any) -> Path:
    """Update top-level fields of a service (``canary={...}`` merges into the mapping)."""

    def change(config):
        target = _service(config, service)
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key].update(value)
            else:
                target[key] = value

    return edit_stack(project, stack, change)


def anchored_fleet(services: int, flags: int, history: int = 24) -> str:
    """The reference staging stack grown to a fleet, written the way a person shares blocks with anchors.

    Every service after the first refers to the first one's resources, health
    check, route matches and rollout (its plan and a shared history of
    ``history`` stages: the fleet is rolled out together); flags refer to two
    shared strategies. Only the names, hosts and images are written out.
    """
    text = (FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text()
    head, _, rest = text.partition("  rollout:services:\n")
    _, _, tail = rest.partition("  rollout:flags:\n")
    flag_lines, _, after_flags = tail.partition("\n\n")
    stages = "".join(
        f"          - weight: {(0, 5, 10, 25)[i % 4]}\n            startedAt: \"2026-{1 + i // 28:02d}-{1 + i % 28:02d}T09:00:00Z\"\n"
        for i in range(history)
    )
    lines = []
    for i in range(services):
        name = f"svc-{i:03d}"
        first = i == 0
        lines.append(
            f"    - name: {name}\n      port: 8080\n"
            f"      stable: {{image: ghcr.io/example/{name}:1.4.2, replicas: 2}}\n"
            f"      canary: {{image: ghcr.io/example/{name}:1.5.0, replicas: 1}}\n"
            + ("      resources: &resources\n        requests: {cpu: 250m, memory: 256Mi}\n"
               "        limits: {cpu: \"1\", memory: 512Mi}\n" if first else "      resources: *resources\n")
            + ("      health: &health {path: /healthz, periodSeconds: 10}\n" if first else "      health: *health\n")
            + f"      route:\n        hostnames: [{name}.staging.example.com]\n"
            + ("        matches: &matches\n          - path: {type: PathPrefix, value: /}\n" if first
               else "        matches: *matches\n")
            + ("      rollout: &fleet\n        plan: safe\n        history:\n" + stages if first
               else "      rollout: *fleet\n")
        )
    generated = [
        "    generated_on_0000: &on {strategy: all_at_once, enabled: true}\n",
        "    generated_staged_0001: &staged\n      strategy: progressive\n      start: \"2026-11-20T09:00:00Z\"\n"
        "      steps:\n" + "".join(f"        - {{after: {d}d, percentage: {p}}}\n"
                                   for d, p in enumerate((0, 5, 10, 25, 50, 75, 100))),
    ]
    generated += [f"    generated_{'on' if i % 2 == 0 else 'staged'}_{i:04d}: {'*on' if i % 2 == 0 else '*staged'}\n"
                  for i in range(2, flags)]
    return (head + "  rollout:services:\n" + "".join(lines) + "\n  rollout:flags:\n" + flag_lines.rstrip("\n") + "\n"
            + "".join(generated) + "\n" + after_flags)
