"""rollout:monitoring.charts: local chart copies, checked before anything is declared."""

from __future__ import annotations

import io
import tarfile

import pytest

from conftest import edit_stack
from rollout.model import versions
from rollout.model.errors import ConfigError
from rollout.load.stack import load_stack

KEY = "kube-prometheus-stack"
NAME, VERSION = versions.CHARTS[KEY]


def _set(project, value: str) -> None:
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].__setitem__("charts", {KEY: value}))


def _chart_dir(root, name=NAME, version=VERSION):
    folder = root / "mirror" / name
    folder.mkdir(parents=True)
    (folder / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return folder


def _tgz(root, name=NAME, version=VERSION):
    path = root / "mirror" / f"{name}-{version}.tgz"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_a_pinned_chart_directory_or_archive_is_accepted_and_used(project):
    from components.monitoring.kubernetes import chart_args

    _chart_dir(project)
    _set(project, f"mirror/{NAME}")
    config = load_stack("staging", project)
    assert chart_args(config, KEY, project) == {"chart": str((project / "mirror" / NAME).resolve())}
    _tgz(project)
    _set(project, f"mirror/{NAME}-{VERSION}.tgz")
    assert load_stack("staging", project).monitoring.charts[KEY].endswith(".tgz")


@pytest.mark.parametrize(
    "make, value, message",
    [
        (None, "mirror/missing", "mirror/missing does not exist"),
        (lambda p: _chart_dir(p, version="1.0.0"), f"mirror/{NAME}", f"is {NAME} 1.0.0; rollout pins {NAME} {VERSION}"),
        (lambda p: _tgz(p, name="other"), f"mirror/other-{VERSION}.tgz", f"is other {VERSION}; rollout pins"),
        (lambda p: (p / "mirror").mkdir(), "mirror", "is a directory without Chart.yaml"),
        (lambda p: (p / "mirror").mkdir() or (p / "mirror" / "x.tgz").write_bytes(b"not gzip"), "mirror/x.tgz",
         "is not a readable chart archive"),
    ],
)
def test_a_missing_or_different_chart_is_one_line_naming_file_and_key(project, make, value, message):
    if make:
        make(project)
    _set(project, value)
    with pytest.raises(ConfigError) as caught:
        load_stack("staging", project)
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"stacks/Pulumi.staging.yaml: rollout:monitoring.charts.{KEY}: ")
    assert message in line


def test_only_the_charts_rollout_installs_are_keys(project):
    _set(project, "x")
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].__setitem__("charts", {"grafana": "x"}))
    with pytest.raises(ConfigError) as caught:
        load_stack("staging", project)
    assert "rollout:monitoring.charts" in str(caught.value)
