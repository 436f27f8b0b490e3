"""Every image and chart version rollout deploys, pinned in one place.

Bump a version here and nowhere else; the golden files and the Helm-values
tests show what the bump changes.
"""

from __future__ import annotations

#: Container images of the Docker (local) target and of sidecars, tag-pinned.
IMAGES: dict[str, str] = {
    "flagd": "ghcr.io/open-feature/flagd:v0.12.9",
}

#: Helm charts of the Kubernetes target: (repository URL, chart, version).
CHARTS: dict[str, tuple[str, str, str]] = {}
