"""Where each Helm chart comes from: the chart repository, or a local copy.

``rollout:monitoring.charts`` maps a chart name to a chart directory or a
``.tgz`` (``helm pull``), relative to the project: what an air-gapped site
mirrors. A local copy must be the pinned chart (rollout/model/versions.py); its
``Chart.yaml`` is read and compared before anything is declared, so a stale
mirror is an error naming the file and the key, not a different deployment.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import yaml

from rollout.model import versions
from rollout.model.config import StackConfig
from rollout.model.errors import ConfigError

#: Chart.yaml is small; a larger one is not a chart.
MAX_CHART_YAML = 1 << 20


def _chart_yaml(path: Path) -> str:
    if path.is_dir():
        meta = path / "Chart.yaml"
        if not meta.is_file():
            raise ValueError("is a directory without Chart.yaml")
        return meta.read_text(encoding="utf-8", errors="replace")[:MAX_CHART_YAML]
    if path.is_file() and path.name.endswith((".tgz", ".tar.gz")):
        try:
            with tarfile.open(path, "r:gz") as archive:
                for member in archive:
                    parts = member.name.split("/")
                    if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                        handle = archive.extractfile(member)
                        assert handle is not None
                        return handle.read(MAX_CHART_YAML).decode("utf-8", errors="replace")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValueError(f"is not a readable chart archive ({type(exc).__name__})") from None
        raise ValueError("is an archive without <chart>/Chart.yaml")
    if not path.exists():
        raise ValueError("does not exist")
    raise ValueError("is neither a chart directory nor a .tgz chart archive")


def local_path(config: StackConfig, key: str, root: Path) -> Path | None:
    configured = config.monitoring.charts.get(key)
    return None if configured is None else (root / configured)


def check_local_charts(config: StackConfig, file: str, root: Path) -> None:
    """Refuse a configured chart that is missing or not the pinned name and version."""
    problems = []
    for key in sorted(config.monitoring.charts):
        path = local_path(config, key, root)
        assert path is not None
        where = f"{file}: rollout:monitoring.charts.{key}"
        chart, version = versions.CHARTS[key]
        try:
            meta = yaml.safe_load(_chart_yaml(path))
        except ValueError as exc:
            problems.append(f"{where}: {config.monitoring.charts[key]} {exc}")
            continue
        except yaml.YAMLError:
            problems.append(f"{where}: {config.monitoring.charts[key]}: Chart.yaml is not valid YAML")
            continue
        if not isinstance(meta, dict):
            problems.append(f"{where}: {config.monitoring.charts[key]}: Chart.yaml is not a mapping")
            continue
        found = (str(meta.get("name")), str(meta.get("version")))
        if found != (chart, version):
            problems.append(
                f"{where}: {config.monitoring.charts[key]} is {found[0]} {found[1]}; "
                f"rollout pins {chart} {version} (rollout/model/versions.py)"
            )
    if problems:
        raise ConfigError(problems)
