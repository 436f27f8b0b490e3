"""Shared fixtures: the project's paths, the shipped stacks, and scratch copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackfiles import FIXTURE, build_project, edit_stack  # noqa: F401  (edit_stack: re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("local", "dev", "staging", "production")
KUBERNETES_STACKS = ("dev", "staging", "production")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The reference project (tests/stackfiles.py) in a scratch folder, safe to edit."""
    return build_project(tmp_path)


def without_secrets(inputs: dict, secret_paths: set[str]) -> dict:
    """A resource's inputs with every subtree the program marked secret redacted."""

    def walk(value, path):
        if path in secret_paths:
            return "<redacted>"
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(inputs, "")


#: What each test module took in a parallel ``make test``: seconds, its tests' setup, call and
#: teardown added up. ``make test`` sends the longest modules to the workers first (longest
#: processing time first), so that no worker starts a long one while the others are nearly done.
#: Every run writes its own figures to build/test-durations.json; copy that file here when the
#: suite has changed shape (a new long module, a module split).
DURATIONS = ROOT / "tests" / "durations.json"
MEASURED = ROOT / "build" / "test-durations.json"
#: A module the file does not know yet: as long as this, by its markers (an unknown module that
#: starts a cluster or the engine, or computes for minutes, is sent early rather than last).
_UNKNOWN_S = {"cluster": 300.0, "engine": 150.0, "slow": 120.0, "e2e": 60.0}
_UNKNOWN_UNMARKED_S = 10.0


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _known_durations() -> dict[str, float]:
    import json

    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _estimate(item) -> float:
    return max((s for marker, s in _UNKNOWN_S.items() if item.get_closest_marker(marker)), default=_UNKNOWN_UNMARKED_S)


def pytest_collection_modifyitems(config, items):
    """The longest modules first, each module whole.

    ``make test`` runs the modules in parallel (pytest-xdist, ``--dist loadfile``:
    a module stays on one worker, so its module-scoped fixture, a Prometheus, an
    engine project or the test cluster, is set up once), in the order they are
    collected (``--no-loadscope-reorder``): this order.
    """
    known = _known_durations()
    weight: dict[str, float] = {}
    for item in items:
        module = _module(item.nodeid)
        if module in known:
            weight[module] = known[module]
        else:
            weight[module] = max(weight.get(module, 0.0), _estimate(item))
    items.sort(key=lambda item: -weight[_module(item.nodeid)])  # stable: modules stay whole, in order


_spent: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """On the main process (or a single one): add up each module's time, for build/test-durations.json."""
    module = _module(report.nodeid)
    _spent[module] = _spent.get(module, 0.0) + report.duration


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: send this process's figures to the main one. On the main
    process: write the modules' times of a run of the whole suite to build/test-durations.json."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from figures import snapshot

        workeroutput["rollout_figures"] = snapshot()
    elif _spent and _whole_suite(session.config):
        import json

        MEASURED.parent.mkdir(exist_ok=True)
        ordered = sorted(_spent.items(), key=lambda kv: -kv[1])
        MEASURED.write_text(json.dumps({module: round(seconds, 1) for module, seconds in ordered}, indent=1) + "\n")


def _whole_suite(config) -> bool:
    """Whether this run is the whole suite (no file named, no -k, no -m, no --lf)."""
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
        and not getattr(config.option, "lf", False)
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the main process: add up a finished worker's figures (pytest-xdist's hook)."""
    from figures import merge

    merge(getattr(node, "workeroutput", {}).get("rollout_figures", {}))


def pytest_terminal_summary(terminalreporter):
    """Print the hardening figures (see tests/figures.py) after the results."""
    from figures import report

    lines = report()
    if lines:
        terminalreporter.section("rollout figures")
        for line in lines:
            terminalreporter.write_line(line)
