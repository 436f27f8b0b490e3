"""Property tests of the config loader: any input loads or fails with clear messages.

Whatever the stack file holds (random structures, random values at real keys,
random bytes), loading it either returns a config or raises ConfigError whose
every line names the file, and a key wherever the problem is at one: never
another exception, never a traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURE, ROOT
from figures import count
from rollout.errors import ConfigError
from rollout.loader import load_file

STAGING = yaml.safe_load((FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text())
SHOWN = "stacks/Pulumi.fuzz.yaml"
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["5m", "1d", "-1s", "kubernetes", "docker", "secure", "100", "2026-11-20T09:00:00Z", "latest"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node, prefix=()):
    """Every path into a nested config structure."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


PATHS = [p for p in _paths(STAGING["config"]) if p]


def _replace(document: dict, path: tuple, value) -> dict:
    changed = copy.deepcopy(document)
    node = changed["config"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return changed


def _load(project: Path, text: bytes) -> str:
    path = project / "stacks" / "Pulumi.fuzz.yaml"
    path.write_bytes(text)
    try:
        load_file(path, project)
    except ConfigError as err:
        assert err.problems, "a ConfigError carries at least one problem"
        for line in err.problems:
            assert line.startswith(f"{SHOWN}: "), line
            assert "Traceback" not in line and "\n" not in line, line
        return "refused"
    return "loaded"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.staging.yaml").write_text((FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text())
    return tmp_path


@SETTINGS
@given(path=st.sampled_from(PATHS), value=values)
def test_any_value_at_any_real_key_loads_or_names_a_key(scratch, path, value):
    document = _replace(STAGING, path, value)
    outcome = _load(scratch, yaml.safe_dump(document).encode())
    count("config loader", f"random value at a real key: {outcome}")
    if outcome == "refused":
        top = path[0]
        try:
            load_file(scratch / "stacks" / "Pulumi.fuzz.yaml", scratch)
        except ConfigError as err:
            assert any(f"{SHOWN}: {top}" in line or f"{SHOWN}: rollout:" in line for line in err.problems), err.problems


@SETTINGS
@given(config=st.dictionaries(st.sampled_from([k for k in STAGING["config"]] + ["rollout:x", "other:key"]), values, max_size=6))
def test_any_structure_under_config_loads_or_fails_clearly(scratch, config):
    outcome = _load(scratch, yaml.safe_dump({"config": config}).encode())
    count("config loader", f"random structure: {outcome}")
    assert outcome == "refused", "a config without the required keys can never load"


@SETTINGS
@given(data=st.binary(max_size=400))
def test_any_bytes_load_or_fail_clearly(scratch, data):
    outcome = _load(scratch, data)
    count("config loader", f"random bytes: {outcome}")


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=len((FIXTURE / "stacks" / "Pulumi.staging.yaml").read_bytes())))
def test_a_truncated_stack_file_loads_or_fails_clearly(scratch, cut):
    outcome = _load(scratch, (FIXTURE / "stacks" / "Pulumi.staging.yaml").read_bytes()[:cut])
    count("config loader", f"truncated file: {outcome}")


#: Text with what a terminal would act on: control characters, escape
#: sequences, line and paragraph separators, bidirectional overrides.
control_text = st.lists(
    st.one_of(
        st.characters(categories=("Cc", "Cf", "Zl", "Zp"), exclude_characters="\x00"),
        st.sampled_from(["a", ":", " ", "stack staging: healthy", "\x1b[2K", "genesis"]),
    ),
    min_size=1, max_size=6,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=control_text, as_key=st.booleans())
def test_a_control_character_in_a_stack_file_reaches_the_terminal_escaped(scratch, path, value, as_key):
    """A value (or a key) holding control characters: each problem is one printable line on stderr."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from rollout.cli import main

    document = _replace(STAGING, path, {value: 1} if as_key else value)
    (scratch / "stacks" / "Pulumi.fuzz.yaml").write_text(yaml.safe_dump(document, allow_unicode=True))
    (scratch / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--project", str(scratch), "status", "--stack", "fuzz"])
    count("config loader", f"control characters in a value: exit {code}")
    assert code in (0, 2), err.getvalue()
    for line in (out.getvalue() + err.getvalue()).split("\n"):
        assert all(ch.isprintable() for ch in line), repr(line)
    if code == 2:
        assert all(line.startswith(f"{SHOWN}: ") for line in err.getvalue().splitlines()), err.getvalue()
