"""Section 10 of the benchmarks: what a fleet costs.

``rollout status --all`` and ``rollout check`` of one stack (a region of the last
wave, which reads its two upstreams and its fleet group) for generated fleets of
4, 16 and 64 stacks (three waves: staging, a canary region, the other regions in
one fleet-limit group) × 1 and 10 services (release groups of two and three among
them), each as a ratio to the 4 × 1 fleet, measured side by side in one run.

The target: ``status --all`` linear in stacks × services (each stack file parsed
once per command, tests/fleetgen.py's fleets through rollout.gates.fleetread), and
``check`` of one stack independent of the fleet's size except for the stacks it
reads. The counts the reader keeps (stack files loaded, states resolved) are
printed beside the times: they are the linearity, without the noise.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

#: A week before any run: every generated history lies in the past.
START = "2026-01-05T06:00:00Z"


def _fleet(into: Path, stacks: int, services: int) -> Path:
    from fleetgen import build_fleet

    build_fleet(into, regions=stacks - 2, services=services, start=START)
    return into


def _reads(project: Path) -> dict[str, int]:
    """How many stack files ``status --all`` loads and states it resolves (in process, counted by the reader)."""
    from rollout.cli.status import rows, upstream_state
    from rollout.gates.fleetread import FleetReader
    from rollout.load.stack import stack_names
    from rollout.model.time import utc_now

    now = utc_now()
    reader = FleetReader(project, now, deployed_from_files=True)
    with contextlib.redirect_stdout(io.StringIO()):
        for stack in stack_names(project):
            config = reader.config(stack)
            rows(config, stack, now, upstream_state(config, project, now, reader), reader=reader)
    return dict(reader.reads)


def run(tiny: bool = False, repeats: int = 3) -> dict:
    from bench import measure_pair, rollout_cmd

    print("10. Fleet: status --all and check of one stack, as ratios to a fleet of 4 stacks x 1 service")
    sizes = [(4, 1)] if tiny else [(4, 1), (4, 10), (16, 1), (16, 10), (64, 1), (64, 10)]
    repeats = 1 if tiny else repeats
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="rollout-fleet-bench-") as scratch:
        base = _fleet(Path(scratch) / "4x1", 4, 1)
        region = "prod-r02"
        for stacks, services in sizes:
            project = base if (stacks, services) == (4, 1) else _fleet(Path(scratch) / f"{stacks}x{services}", stacks,
                                                                       services)
            status, status_base = measure_pair(rollout_cmd("status", "--all", project=project),
                                               rollout_cmd("status", "--all", project=base), repeats)
            check, check_base = measure_pair(rollout_cmd("check", "--stack", region, project=project),
                                             rollout_cmd("check", "--stack", region, project=base), repeats)
            reads = _reads(project)
            row = {"status_ratio": round(status.seconds / status_base.seconds, 2),
                   "check_ratio": round(check.seconds / check_base.seconds, 2),
                   "status_seconds": round(status.seconds, 2), "check_seconds": round(check.seconds, 2),
                   "stack_files_loaded": reads["configs"], "states_resolved": reads["deployed"]}
            figures[f"{stacks}x{services}"] = row
            print(f"   {stacks:>2} stacks x {services:>2} services: status --all {row['status_ratio']:.2f}x "
                  f"({row['status_seconds']:.2f} s), check {region} {row['check_ratio']:.2f}x "
                  f"({row['check_seconds']:.2f} s); stack files loaded {reads['configs']}, "
                  f"states resolved {reads['deployed']}")
    return figures


__all__ = ["run"]
