"""A tiny run of the benchmarks (smallest sizes) so the script cannot rot, and every size's inputs.

Its figures are printed, never asserted: these machines are shared and noisy.
The full sizes take too long to time here, but what they read is checked: the
stack files section 2 generates and section 6 edits load, at every size.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURE, ROOT
from rollout.load.stack import load_file

pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench", module)  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _bench()
SIZES = sorted({(s, f) for size in ("full", "tiny") for s in bench.GROWTH_SERVICES[size] for f in bench.GROWTH_FLAGS[size]})


@pytest.mark.parametrize("services,flags", SIZES, ids=[f"{s}-services-{f}-flags" for s, f in SIZES])
def test_every_generated_stack_of_the_growth_section_loads(tmp_path: Path, services: int, flags: int):
    project = bench.generated_project(services, flags, tmp_path)
    path = project / "stacks" / "Pulumi.bench.yaml"
    config = load_file(path, project)
    assert len(config.services) == services
    assert len(config.flags) == flags
    # Written out in full: no anchors or aliases for the stack-file limits to weigh.
    assert not [e for e in yaml.parse(path.read_text()) if getattr(e, "anchor", None)]


@pytest.mark.parametrize("kb", sorted(set(bench.EDIT_SIZES_KB["full"] + bench.EDIT_SIZES_KB["tiny"])))
def test_every_stack_file_of_the_edit_cost_section_loads(tmp_path: Path, kb: int):
    path = bench.large_stack_file(tmp_path, kb * 1024)
    assert len(path.read_bytes()) >= kb * 1024
    assert load_file(path, tmp_path).services[0].rollout.history


# It runs the engine's preview (section 7), a test cluster and real servers (section 8).
@pytest.mark.engine
@pytest.mark.cluster
@pytest.mark.e2e
def test_the_tiny_benchmark_runs_and_prints_every_section():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--tiny"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    for heading in ("1. Preview cost", "2. Growth", "3. Detection", "4. Rule cost", "5. Render", "6. Edit cost", "7. Engine preview", "8. Rollback loop",
                    "9. Judging the canary", "10. Fleet"):
        assert heading in result.stdout
    assert "floor (the flat program under a pack of the same policies judging nothing)" in result.stdout
    assert "the least the shipped alerts need each interval" in result.stdout


def _rulecost():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import rulecost

    return rulecost


def test_the_rule_cost_section_counts_what_the_alerts_read_through_other_recordings():
    rulecost = _rulecost()
    from rollout.load.stack import load_stack

    golden = ROOT / "tests" / "golden" / "production" / "prometheus" / "rules"
    groups = [group for path in sorted(golden.glob("*.yaml")) for group in yaml.safe_load(path.read_text())["groups"]]
    needed = rulecost.alerts_read(groups)
    # Read by alerts directly (the quantiles they compare) and through other recordings (the
    # 5-minute rates under every burn-rate window); the dashboards' median is read by none.
    assert {"service_track:http_request_duration_seconds:p95_5m", "service_track:http_request_duration_seconds:p99_5m",
            "service:http_request_errors:ratio_rate3d", "service:http_requests:rate5m",
            "service_track_le:http_request_duration_seconds_bucket:rate5m"} <= needed
    assert "service_track:http_request_duration_seconds:p50_5m" not in needed
    # Each shipped rule's time lands in one part: a raw read, an alert's recording, or neither.
    seconds = {(group["name"], index): 1.0 for group in groups for index, _ in enumerate(group["rules"])}
    split = rulecost.attribute(load_stack("production", FIXTURE), groups, seconds)
    shipped = [rule for group in groups if group["name"] in rulecost.SHIPPED_GROUPS for rule in group["rules"]]
    assert sum(split.values()) == len(shipped)
    assert split["reads"] == 3  # requests by code, duration buckets, probe results: what the floor reads
    assert split["unalerted"] >= 1
