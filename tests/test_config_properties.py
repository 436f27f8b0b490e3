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
from rollout.model.errors import ConfigError
from rollout.load.stack import load_file

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
# --- shapes nobody planned for: self-reference, depth, aliases, tags, ranges, names ----------

STAGING_TEXT = (FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text()
#: Lines of the staging file that hold a plain scalar value, as (prefix up to the value, value).
VALUE_LINES = [
    (line[: line.index(": ") + 2], line[line.index(": ") + 2:])
    for line in STAGING_TEXT.splitlines()
    if ": " in line and not line.lstrip().startswith(("#", "-")) and not line.rstrip().endswith(":")
    and "{" not in line
]


@st.composite
def yaml_shapes(draw) -> str:
    """A YAML value of a shape a stack file never has: self-reference, depth, alias fan-out."""
    kind = draw(st.sampled_from(["self", "depth", "bomb", "aliases"]))
    if kind == "self":
        inner = draw(st.sampled_from(["[*a]", "{k: *a}", "[1, [*a]]", "{k: [x, {j: *a}]}"]))
        return f"&a {inner}"
    if kind == "depth":
        depth = draw(st.integers(min_value=1, max_value=400))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
        return opener * depth + closer * depth
    if kind == "bomb":
        levels, width = draw(st.integers(2, 30)), draw(st.integers(2, 12))
        return "[" + ", ".join(
            ([f"&l0 [{', '.join(['x'] * width)}]"]
             + [f"&l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)])
        ) + "]"
    width = draw(st.integers(1, 40))
    return "[&v x, " + ", ".join(["*v"] * width) + "]"


TAGGED = st.tuples(
    st.sampled_from(["!!binary", "!!int", "!!float", "!!bool", "!!str", "!!null", "!!set", "!!omap", "!!timestamp",
                     "!local", "!", "!<tag:example.com:x>", "!!python/name:os.system"]),
    st.sampled_from(["MjU=", "25", "031", "0x19", "1_000", "1:30", "true", "yes", "2026-11-20", "{1}", "[a, b]", '""']),
).map(lambda pair: f"{pair[0]} {pair[1]}")

NUMBERS = st.sampled_from(["031", "0o31", "0x19", "0b11001", "1_000", "1:30", "+25", "-0", "25.0", "2.5e1", ".inf",
                           "-.inf", ".nan", "1e999", "false", "true", "yes", "no", "on", "off", "~", "null"])

# Times over the whole range Python has, with offsets to the minute; text that looks like a time.
TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: f'"{d.isoformat()}"'),
    st.builds(lambda y, h: f'"{y:04d}-01-01T00:00:00{h}"', st.integers(1, 9999),
              st.sampled_from(["Z", "+01:00", "-01:00", "+23:59", "-23:59", ""])),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
DURATIONS = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(min_value=0, max_value=10**30), st.sampled_from(["ms", "s", "m", "h", "d", "w"])
)
NAMES = st.one_of(
    st.text(alphabet="abcz019-_.A\n\t :{}\"", max_size=70),
    st.integers(1, 80).map(lambda n: "g" * n),
    st.sampled_from(["genesis\n", "1genesis", "genesis-", "-genesis", "Genesis", "a" * 56, "a" * 57]),
)


def _with_value(prefix: str, value: str) -> str:
    return STAGING_TEXT.replace(next(p + v for p, v in VALUE_LINES if p == prefix), prefix + value, 1)


@SETTINGS
@given(line=st.sampled_from(VALUE_LINES), value=st.one_of(yaml_shapes(), TAGGED, NUMBERS))
def test_any_shape_tag_or_number_at_a_real_key_loads_or_fails_clearly(scratch, line, value):
    outcome = _load(scratch, _with_value(line[0], value).encode())
    count("config loader", f"self-reference, depth, aliases, tags, numbers at real keys: {outcome}")


@SETTINGS
@given(
    where=st.sampled_from(['startedAt: "2026-11-16T09:00:00Z"', 'startedAt: "2026-11-18T09:00:00Z"',
                           'start: "2026-11-20T09:00:00Z"']),
    time_=TIMES,
)
def test_any_time_loads_or_fails_clearly_and_a_loaded_one_renders(scratch, where, time_):
    text = STAGING_TEXT.replace(where, where.split(": ")[0] + ": " + time_, 1)
    outcome = _load(scratch, text.encode())
    count("config loader", f"generated times: {outcome}")
    if outcome == "loaded":
        _use(scratch)


@SETTINGS
@given(key=st.sampled_from(["sustainFor", "evidenceMaxAge", "window", "retention", "scrapeInterval"]),
       duration=DURATIONS, step=DURATIONS)
def test_any_duration_loads_or_fails_clearly_and_a_loaded_one_renders(scratch, key, duration, step):
    prefix = next(p for p, _ in VALUE_LINES if p.strip() == f"{key}:")
    text = _with_value(prefix, duration).replace("{after: 6d, percentage: 100}", f"{{after: {step}, percentage: 100}}")
    outcome = _load(scratch, text.encode())
    count("config loader", f"generated durations: {outcome}")
    if outcome == "loaded":
        _use(scratch)


@SETTINGS
@given(name=NAMES, metric=NAMES)
def test_any_service_or_metric_name_loads_only_as_kubernetes_and_prometheus_take_it(scratch, name, metric):
    import json as _json
    import re as _re

    text = STAGING_TEXT.replace("- name: genesis", f"- name: {_json.dumps(name)}").replace(
        "  rollout:slo:\n", f"  rollout:metrics:\n    requestsTotal: {_json.dumps(metric)}\n  rollout:slo:\n")
    outcome = _load(scratch, text.encode())
    count("config loader", f"generated service and metric names: {outcome}")
    if outcome == "loaded":
        # Kubernetes' DNS-1035 label for the Services <name>-stable and <name>-canary; Prometheus' metric name.
        for rendered in (f"{name}-stable", f"{name}-canary"):
            assert len(rendered) <= 63 and _re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", rendered), name
        assert _re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", metric) and not metric.startswith("__"), metric


def _use(project: Path) -> None:
    """What the commands do with a loaded config: the state, the flags, every artifact; no exception."""
    from rollout.build.flags import flag_document
    from rollout.build.render import render
    from rollout.model.state import rollout_state

    config = load_file(project / "stacks" / "Pulumi.fuzz.yaml", project)
    rollout_state(config, "fuzz")
    flag_document(config, "fuzz")
    render(config, "fuzz", project / "rendered")
