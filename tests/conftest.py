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


#: The markers of the longest tests, longest first: a cluster, the engine, the modules that
#: compute for minutes, then real servers waiting on alerts (which leave the processor to the rest).
_LONGEST_FIRST = ("cluster", "engine", "slow", "e2e")


def _rank(item) -> int:
    for rank, marker in enumerate(_LONGEST_FIRST):
        if item.get_closest_marker(marker):
            return rank
    return len(_LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups from the markers
def pytest_collection_modifyitems(config, items):
    """Keep each module that shares a fixture across its tests on one worker.

    ``make test`` runs the tests in parallel (pytest-xdist, ``--dist loadfile``).
    A module-scoped fixture (a Prometheus, an engine project, the test cluster)
    would otherwise be set up again on every worker that runs one of the
    module's tests; the rest are spread one by one. Modules holding the longest
    tests come first, so that no worker starts one when the others are nearly done.
    """
    module_rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        module_rank[module] = min(module_rank.get(module, len(_LONGEST_FIRST)), _rank(item))
    items.sort(key=lambda item: module_rank[item.nodeid.split("::")[0]])  # stable: modules stay whole, in order
    shared = {"module", "package", "class"}
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        if definitions is None or item.get_closest_marker("xdist_group"):
            continue
        if any(d.scope in shared for defs in definitions.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: send this process's figures to the main one."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from figures import snapshot

        workeroutput["rollout_figures"] = snapshot()


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
