"""``rollout render``: write a stack's artifacts to a folder, exactly as deployed.

Secrets are never decrypted here: where a file would hold one, it holds a
placeholder (``<secret:rollout:secrets.NAME>``) or a reference to a file that
the deployed system mounts.
"""

from __future__ import annotations

from pathlib import Path

from rollout.build.artifacts import Artifacts, build_artifacts
from rollout.model.config import StackConfig
from rollout.load.files import write_atomic


def render(config: StackConfig, stack: str, out: Path) -> list[Path]:
    """Write every artifact under ``out``; return the paths written, sorted."""
    return write_artifacts(build_artifacts(config, stack), out)


def write_artifacts(artifacts: Artifacts, out: Path) -> list[Path]:
    written = []
    for relative, text in artifacts.files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
        written.append(path)
    return written
