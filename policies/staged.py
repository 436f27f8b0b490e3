"""The pack's config ``rollout stage`` staged for a stack: what a plain ``pulumi preview
--policy-pack policies`` (no ``--policy-pack-config``) judges with, while it is current.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Where ``rollout stage`` writes a stack's pack config (relative to the project).
STAGED_CONFIG = "build/policy-config-{stack}.json"
#: The keys of the gates' config.
GATE_KEYS = ("evidence", "deployedState", "deployedStateSource", "upstreamState", "upstreamStateSource", "upstreamStates",
             "fleet", "changedFiles")


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
