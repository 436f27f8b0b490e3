"""rollout's benchmarks: what a preview costs, how it grows, how fast alerts fire and a rollback is dispatched,
and how the canary's judge decides.

Every figure is a ratio measured side by side in one run, or a count: the
machines this runs on are shared and noisy, so absolute seconds mean little.
Run ``make bench`` (all sizes) or ``python benchmarks/bench.py --tiny`` (the
smallest sizes, as the test suite does so the script cannot rot).
docs/performance.md records the figures and how to reproduce them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
sys.path.insert(0, str(Path(__file__).resolve().parent))

_SDK_PREFIXES = ("pulumi", "pulumi_", "pulumiverse_")


def sdk_modules(stack: str = "production") -> list[str]:
    """The Pulumi SDK modules `rollout check` actually loads for ``stack``.

    The SDKs load their resource modules lazily, so "import pulumi_kubernetes"
    alone would understate the floor; importing exactly what the program pulled
    in is the floor no run of the program can go below.
    """
    script = (
        "import sys, json, contextlib, io\n"
        "from rollout import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli.main(['--project', {str(ROOT)!r}, 'check', '--stack', {stack!r}])\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0].startswith({_SDK_PREFIXES!r}))))\n"
    )
    out = subprocess.run([PYTHON, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class Measure:
    """Median wall time (s) and the largest peak resident memory (MiB) over repeats."""

    seconds: float
    peak_mib: float

    def ratio(self, floor: "Measure") -> tuple[float, float]:
        return self.seconds / floor.seconds, self.peak_mib / floor.peak_mib


def run_measured(argv: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """Wall time and peak RSS (MiB) of one child process, from wait4's rusage."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def measure_pair(a: list[str], b: list[str], repeats: int, cwd: Path = ROOT) -> tuple[Measure, Measure]:
    """Measure two commands interleaved (a, b, a, b, ...) so noise hits both alike."""
    runs_a, runs_b = [], []
    for _ in range(repeats):
        runs_a.append(run_measured(a, cwd))
        runs_b.append(run_measured(b, cwd))

    def summary(runs):
        return Measure(statistics.median(r[0] for r in runs), max(r[1] for r in runs))

    return summary(runs_a), summary(runs_b)


def rollout_cmd(*args: str, project: Path = ROOT) -> list[str]:
    return [PYTHON, "-m", "rollout.cli", "--project", str(project), *args]


_FLOOR: list[str] = []


def floor_cmd() -> list[str]:
    """A process that only imports the Pulumi SDK modules the program uses."""
    if not _FLOOR:
        _FLOOR.extend(sdk_modules())
    return [PYTHON, "-c", "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in _FLOOR)]


def profile_check(stack: str, top: int = 12) -> str:
    """Where `rollout check` spends its time beyond the imports, by cumulative time."""
    from rollout import cli

    profiler = cProfile.Profile()
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        profiler.runcall(cli.main, ["--project", str(ROOT), "check", "--stack", stack])
    finally:
        sys.stdout = stdout
        devnull.close()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    # Our own code and the Pulumi SDK's, by cumulative time; import machinery left out.
    stats.sort_stats("cumulative").print_stats(r"(/rollout/|/components/|/alerts/|/dashboards/|/pulumi/)", top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[header:])


# --- generated stacks ----------------------------------------------------------------

#: The sizes section 2 generates: every pair of services and flags (``--tiny``: the first of each).
GROWTH_SERVICES = {"full": [1, 10, 50], "tiny": [1, 10]}
GROWTH_FLAGS = {"full": [15, 100, 500], "tiny": [15]}
#: The stack-file sizes (KB) section 6 edits.
EDIT_SIZES_KB = {"full": [8, 264, 894], "tiny": [8]}


class _PlainDumper(yaml.SafeDumper):
    """Writes every value out: the generated services and flags share Python objects,
    which PyYAML would otherwise write once with an anchor and repeat as aliases."""

    def ignore_aliases(self, data):
        return True


def generated_project(services: int, flags: int, into: Path) -> Path:
    """A scratch project whose ``bench`` stack has ``services`` services and ``flags`` flags,
    derived from the shipped staging stack (every other setting as shipped)."""
    (into / "stacks").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", into / "Pulumi.yaml")
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    config = document["config"]
    config.pop("rollout:promotesFrom", None)
    template = config["rollout:services"][0]
    config["rollout:services"] = [dict(template, name=f"svc-{i:03d}") for i in range(services)]
    shipped = config["rollout:flags"]
    generated = dict(shipped)
    kinds = [
        {"strategy": "all_at_once", "enabled": True},
        {"strategy": "percentage", "percentage": 30},
        shipped["phase_4_deployment"],
        {"strategy": "canary", "service": "svc-000", "percentage": 100},
    ]
    index = 0
    while len(generated) < flags:
        generated[f"generated_flag_{index:04d}"] = kinds[index % len(kinds)]
        index += 1
    config["rollout:flags"] = dict(list(generated.items())[:flags]) if flags >= len(shipped) else generated
    (into / "stacks" / "Pulumi.bench.yaml").write_text(yaml.dump(document, Dumper=_PlainDumper, sort_keys=False))
    return into


# --- the sections ---------------------------------------------------------------------


def section_preview_cost(repeats: int) -> dict:
    check, floor = measure_pair(rollout_cmd("check", "--stack", "production"), floor_cmd(), repeats)
    time_ratio, memory_ratio = check.ratio(floor)
    print("1. Preview cost: `rollout check --stack production` against the import floor")
    print(f"   floor (import the {len(_FLOOR)} Pulumi SDK modules check loads): {floor.seconds:.3f} s, {floor.peak_mib:.0f} MiB")
    print(f"   check:                          {check.seconds:.3f} s, {check.peak_mib:.0f} MiB")
    print(f"   ratio: time {time_ratio:.2f}x, memory {memory_ratio:.2f}x (target: at most 1.5x)")
    print("   where check's time goes (cumulative, in-process):")
    for line in profile_check("production").splitlines():
        print(f"     {line}")
    return {"time_ratio": round(time_ratio, 3), "memory_ratio": round(memory_ratio, 3)}


def section_growth(sizes_services: list[int], sizes_flags: list[int], repeats: int) -> dict:
    print("2. Growth: generated stacks (check and render, against one service and the smallest flag set)")
    results: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        base: dict[str, Measure] = {}
        for services in sizes_services:
            for flags in sizes_flags:
                project = generated_project(services, flags, Path(scratch) / f"s{services}-f{flags}")
                out = Path(scratch) / f"out-{services}-{flags}"
                check, render = measure_pair(
                    rollout_cmd("check", "--stack", "bench", project=project),
                    rollout_cmd("render", "--stack", "bench", "--out", str(out), project=project),
                    repeats,
                )
                key = f"{services} services, {flags} flags"
                if not base:
                    base = {"check": check, "render": render}
                check_ratio, render_ratio = check.seconds / base["check"].seconds, render.seconds / base["render"].seconds
                results[key] = {"check_ratio": round(check_ratio, 3), "render_ratio": round(render_ratio, 3),
                                "check_peak_mib": round(check.peak_mib), "render_peak_mib": round(render.peak_mib)}
                print(f"   {key:>26}: check {check_ratio:5.2f}x ({check.peak_mib:4.0f} MiB), "
                      f"render {render_ratio:5.2f}x ({render.peak_mib:4.0f} MiB)")
    print("   target: 50 services cost at most 2x one service; nothing quadratic")
    return results


def section_render(repeats: int) -> dict:
    stacks = ("local", "dev", "staging", "production")
    with tempfile.TemporaryDirectory() as scratch:
        script = "; ".join(
            ["from rollout import cli"]
            + [f"cli.main(['--project', {str(ROOT)!r}, 'render', '--stack', {s!r}, '--out', {str(Path(scratch) / s)!r}])" for s in stacks]
        )
        render, floor = measure_pair([PYTHON, "-c", script], floor_cmd(), repeats)
    time_ratio, memory_ratio = render.ratio(floor)
    print("5. Render: all four stacks in one process, against the import floor")
    print(f"   ratio: time {time_ratio:.2f}x, memory {memory_ratio:.2f}x")
    return {"time_ratio": round(time_ratio, 3), "memory_ratio": round(memory_ratio, 3)}


def large_stack_file(into: Path, target_bytes: int) -> Path:
    """The reference staging stack with a history long enough to make the file ``target_bytes``:
    rollbacks and restarts (0 %, 5 %) a day apart, each with a reason."""
    from datetime import datetime, timedelta, timezone

    shutil.copy(ROOT / "tests" / "fixtures" / "project" / "Pulumi.yaml", into / "Pulumi.yaml")
    (into / "stacks").mkdir(exist_ok=True)
    text = (ROOT / "tests" / "fixtures" / "project" / "stacks" / "Pulumi.staging.yaml").read_text()
    head, marker, tail = text.partition("        history:\n")
    lines, moment, weight = [], datetime(2000, 1, 1, tzinfo=timezone.utc), 0
    size = len(head) + len(tail)
    while size < target_bytes:
        entry = (f"          - weight: {weight}\n            startedAt: \"{moment:%Y-%m-%dT%H:%M:%SZ}\"\n"
                 f"            reason: \"stage {len(lines)} of a long history\"\n")
        lines.append(entry)
        size += len(entry)
        moment += timedelta(hours=12)
        weight = 5 if weight == 0 else 0
    path = into / "stacks" / "Pulumi.staging.yaml"
    path.write_text(head + marker + "".join(lines) + tail)
    return path


def section_edit_cost(sizes_kb: list[int], repeats: int) -> dict:
    """An edit of a stack file (a rollback: splice, check, write, rename) against reading it
    (parse and validate, what every command does first: a fresh parse), in one process."""
    from datetime import datetime, timezone

    sys.path.insert(0, str(ROOT))
    from rollout.load.stack import forget_parsed, load_file
    from rollout.load.stackfile import NewEntry, append_history

    print("6. Edit cost: a rollback's edit of a large stack file against reading it")
    figures = {}
    for kb in sizes_kb:
        with tempfile.TemporaryDirectory() as scratch:
            path = large_stack_file(Path(scratch), kb * 1024)
            original = path.read_bytes()
            reads, edits = [], []
            load_file(path, Path(scratch))  # the imports and first uses a command has paid before it reads
            for _ in range(repeats):
                # A command's first read parses the file; the edit that follows it in the same
                # command finds it parsed (rollout.load.stack keeps a file's parse by content).
                forget_parsed()
                started = time.perf_counter()
                load_file(path, Path(scratch))
                reads.append(time.perf_counter() - started)
                entry = NewEntry("genesis", 0, datetime(2026, 12, 1, tzinfo=timezone.utc), "bench")
                started = time.perf_counter()
                append_history(path, [entry], Path(scratch))
                edits.append(time.perf_counter() - started)
                path.write_bytes(original)
            ratio = statistics.median(edits) / statistics.median(reads)
            print(f"   {len(original) // 1024:>5} KB: edit {ratio:.2f}x a read")
            figures[f"{kb}kb"] = round(ratio, 2)
    print("   target: an edit costs a small multiple of a read (at most 3x), at every size")
    return figures


EMPTY_PROGRAM = """\"\"\"The benchmark's empty program: the same Kubernetes provider, nothing else.\"\"\"
import pulumi_kubernetes as k8s

k8s.Provider("empty", render_yaml_to_directory="build/empty/manifests")
"""

FLAT_PROGRAM = """\"\"\"The benchmark's flat program: as many Kubernetes objects as dev declares, and nothing to decide.\"\"\"
import pulumi
import pulumi_kubernetes as k8s

from components.kube import KubernetesObject  # declared as the program declares its objects

provider = k8s.Provider("flat", render_yaml_to_directory="build/flat/manifests")
for index in range({count}):
    KubernetesObject(f"object-{{index}}", {{"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {{"name": f"object-{{index}}", "namespace": "flat"}},
                                          "data": {{"payload": "x" * 2000}}}},
                     opts=pulumi.ResourceOptions(provider=provider))
"""

#: A policy pack with the rollout pack's policies (names, descriptions, enforcement) that judge
#: nothing: what the engine and pulumi-policy cost a preview before any gate runs. It runs as the
#: rollout pack does (its policies/PulumiPolicy.yaml beside it).
NOTHING_PACK = """\"\"\"The rollout pack's policies, judging nothing.\"\"\"
import json
import os
import signal
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy

signal.signal(signal.SIGINT, lambda _signum, _frame: os._exit(0))  # as the rollout pack leaves
catalogue = json.loads((Path(__file__).resolve().parent.parent / "policies" / "catalogue.json").read_text())
PolicyPack(name="nothing", policies=[
    StackValidationPolicy(name=entry["name"], description=entry["description"], validate=lambda args, report: None,
                          enforcement_level=EnforcementLevel.MANDATORY, remediation_steps=entry["remediation"])
    for entry in catalogue
])
"""


def _created(output: str) -> int:
    found = re.search(r"\+ (\d+) to create", output)
    if not found:
        raise SystemExit(f"the preview did not say what it creates:\n{output}")
    return int(found.group(1))


def section_engine_preview(repeats: int) -> dict:
    """`pulumi preview -s dev` under the real engine, with and without the pack, against an empty
    program's preview, a flat program's (the same number of objects, nothing decided) and the
    **floor**: the flat program under a pack of the same policies that judge nothing, the least a
    judged preview of these objects costs this engine and pulumi-policy."""
    sys.path.insert(0, str(ROOT / "tests"))
    from engine import engine_project

    with tempfile.TemporaryDirectory(prefix="rollout-bench-engine-") as scratch:
        full = engine_project(Path(scratch) / "full")
        full.edit("dev", lambda config: config["rollout:monitoring"].__setitem__("install", False))
        empty = engine_project(Path(scratch) / "empty")
        (empty.path / "__main__.py").write_text(EMPTY_PROGRAM)
        flat = engine_project(Path(scratch) / "flat")
        nothing = flat.path / "nothing-pack"
        nothing.mkdir()
        shutil.copy2(flat.path / "policies" / "PulumiPolicy.yaml", nothing)
        (nothing / "__main__.py").write_text(NOTHING_PACK)
        for project in (full, empty, flat):
            project.init("dev")
        runs = {  # dev without the pack first: its preview counts the objects the flat program declares
            "program": lambda: full.pulumi("preview", "-s", "dev"),
            "empty": lambda: empty.pulumi("preview", "-s", "dev"),
            "flat": lambda: flat.pulumi("preview", "-s", "dev"),
            "floor": lambda: flat.pulumi("preview", "-s", "dev", "--policy-pack", str(nothing)),
            "full": lambda: full.preview("dev"),
        }
        timings: dict[str, list[float]] = {name: [] for name in runs}
        objects = None
        for _ in range(repeats):
            for name, run in runs.items():
                started = time.perf_counter()
                done = run()
                timings[name].append(time.perf_counter() - started)
                if done.returncode != 0:
                    raise SystemExit(f"engine preview of the {name} program failed:\n{done.stdout}{done.stderr}")
                if objects is None:
                    objects = _created(done.stdout) - 1  # less the stack itself
                    (flat.path / "__main__.py").write_text(FLAT_PROGRAM.format(count=objects - 1))  # and the provider
    median = {name: statistics.median(values) for name, values in timings.items()}
    ratio = median["full"] / median["empty"]
    print("7. Engine preview: `pulumi preview -s dev --policy-pack policies` against an empty program's preview")
    print(f"   empty program (the Kubernetes provider only): {median['empty']:.2f} s; "
          f"flat program ({objects} objects, nothing decided): {median['flat']:.2f} s")
    print(f"   floor (the flat program under a pack of the same policies judging nothing): {median['floor']:.2f} s, "
          f"{median['floor'] / median['empty']:.2f}x the empty program")
    print(f"   dev without the pack: {median['program']:.2f} s; dev with the pack: {median['full']:.2f} s")
    print(f"   ratio: time {ratio:.2f}x the empty program (target: at most 1.5x), "
          f"{median['full'] / median['floor']:.2f}x the floor, {median['full'] / median['flat']:.2f}x the flat program; "
          f"the pack adds {median['full'] / median['program']:.2f}x")
    return {
        "time_ratio": round(ratio, 3),
        "floor_ratio": round(median["floor"] / median["empty"], 3),
        "over_floor": round(median["full"] / median["floor"], 3),
        "flat_ratio": round(median["full"] / median["flat"], 3),
        "pack_ratio": round(median["full"] / median["program"], 3),
        "objects": objects,
        **{f"{name}_seconds": round(value, 2) for name, value in median.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smallest sizes, one repeat (the test suite's run)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    repeats = 1 if args.tiny else 5
    size = "tiny" if args.tiny else "full"
    import detection
    import fleet
    import judging
    import loop
    import rulecost

    figures = {
        "preview_cost": section_preview_cost(repeats),
        "growth": section_growth(GROWTH_SERVICES[size], GROWTH_FLAGS[size], repeats),
        "detection": detection.run(tiny=args.tiny),
        "rule_cost": rulecost.run(tiny=args.tiny),
        "render": section_render(repeats),
        "edit_cost": section_edit_cost(EDIT_SIZES_KB[size], repeats),
        "engine_preview": section_engine_preview(repeats),
        "rollback_loop": loop.run(tiny=args.tiny),
        "fleet": fleet.run(tiny=args.tiny),
        "judging": judging.run(tiny=args.tiny),
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
