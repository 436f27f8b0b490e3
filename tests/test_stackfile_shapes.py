"""Stack files nobody planned for: every command refuses them with exit 2 and one line per problem.

Self-reference, deep nesting, alias bombs, YAML tags, values YAML readers differ
on, times and durations out of range, names Kubernetes or Prometheus would
refuse, secrets that are not ciphertext. Each is tried with every command that
reads a stack file, in-process: exit 2, every stderr line naming the file, no
internal error, the file left byte for byte, and no secret repeated.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from figures import count
from rollout.cli import main
from stackfiles import FIXTURE

pytestmark = pytest.mark.slow

BASE = (FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text()
SHOWN = "stacks/Pulumi.odd.yaml"
CIPHERTEXT = "v1:SHCAq0Bxs3jLb74d:KvFxMf2n5YFYtPqIc1DyueVsyH/WpeilgCdPqnF57WOYi++CJGR6XJdg5ZvO"
#: A clear-text value: never to appear in any output.
CLEAR = "hunter2-correct-horse"


def add_key(text: str) -> str:
    return BASE.replace("  rollout:tier: staging\n", f"  rollout:tier: staging\n{text}\n")


def bomb(levels: int, width: int) -> str:
    lines = [f"  rollout:l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"  rollout:l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return add_key("\n".join(lines))


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return add_key(f"  rollout:x: {open_ * depth}{close * depth}")


CASES = {
    # YAML shapes
    "self-reference": (add_key("  rollout:x: &a [*a]"), "refers to a node that contains it"),
    "self-reference in a mapping": (add_key("  rollout:x: &a {k: *a}"), "refers to a node that contains it"),
    "self-reference, nested": (add_key("  rollout:x: &a [[1, [*a]]]"), "refers to a node that contains it"),
    "nesting 500 deep": (nested(500), "nests deeper than"),
    "nesting 200 deep in mappings": (nested(200, "{a: ", "}"), "nests deeper than"),
    "nesting 33 deep": (nested(33), "nests deeper than"),
    "an alias bomb (9^9 nodes)": (bomb(9, 9), "aliases repeat more than"),
    "an alias bomb (2^40 nodes)": (bomb(40, 2), "aliases repeat more than"),
    # tags and values YAML readers differ on
    "a !!binary weight": (BASE.replace("replicas: 1", "replicas: !!binary MjU="), "this YAML tag is not allowed"),
    "a local tag": (BASE.replace("replicas: 1", "replicas: !custom 1"), "this YAML tag is not allowed"),
    "a !!set": (BASE.replace("replicas: 1", "replicas: !!set {1}"), "this YAML tag is not allowed"),
    "weight: false": (BASE.replace("- weight: 5\n", "- weight: false\n"), "false is not a valid integer"),
    "replicas: true": (BASE.replace("replicas: 1", "replicas: true"), "true is not a valid integer"),
    "an octal-looking weight 031": (BASE.replace("percentage: 25\n", "percentage: 031\n"), "not a plain number"),
    "a hexadecimal number": (BASE.replace("replicas: 1", "replicas: 0x1"), "not a plain number"),
    "a number with underscores": (BASE.replace("minRequests: 100", "minRequests: 1_00"), "not a plain number"),
    "a sexagesimal number": (BASE.replace("minRequests: 100", "minRequests: 1:40"), "not a plain number"),
    "a float with underscores": (BASE.replace("errorRatio: 0.001", "errorRatio: 0.0_01"), "not a plain number"),
    "a yes for a boolean": (BASE.replace("install: true", "install: yes"), "not a plain boolean"),
    "a number as text": (BASE.replace("replicas: 1", 'replicas: "1"'), "is not a valid integer"),
    "a boolean as text": (BASE.replace("install: true", 'install: "true"'), "is not a valid boolean"),
    "a time as a number": (BASE.replace('startedAt: "2026-11-16T09:00:00Z"', "startedAt: 1700000000"), "is not a time"),
    # times and durations out of range
    "year 1 with a positive offset": (BASE.replace('"2026-11-16T09:00:00Z"', '"0001-01-01T00:00:00+01:00"'), "out of range"),
    "year 1 with a negative offset": (BASE.replace('"2026-11-16T09:00:00Z"', '"0001-01-01T00:00:00-01:00"'), "out of range"),
    "a progressive flag starting in 9999": (BASE.replace('start: "2026-11-20T09:00:00Z"', 'start: "9999-12-31T23:59:59Z"'), "out of range"),
    "a time in year 3000": (BASE.replace('start: "2026-11-20T09:00:00Z"', 'start: "2999-12-31T23:00:00-01:00"'), "out of range"),
    "99999999999999d": (BASE.replace("sustainFor: 5m", "sustainFor: 99999999999999d"), "longer than the longest duration"),
    "a step after 10 years": (BASE.replace("{after: 6d, percentage: 100}", "{after: 3651d, percentage: 100}"), "longer than"),
    "a soak of 10^20 ms": (BASE.replace("window: 30d", "window: 100000000000000000000ms"), "longer than"),
    # names as they are rendered
    "a service name with a final newline": (BASE.replace("- name: genesis", '- name: "genesis\\n"'), "is not a service name"),
    "a service name of 57 characters": (BASE.replace("- name: genesis", "- name: " + "g" * 57), "is not a service name"),
    "a service name starting with a digit": (BASE.replace("- name: genesis", "- name: 1genesis"), "is not a service name"),
    "a service name ending in -": (BASE.replace("- name: genesis", "- name: genesis-"), "is not a service name"),
    "a namespace with a final newline": (BASE.replace("namespace: rollout-staging\n", 'namespace: "rollout-staging\\n"\n'), "is not a DNS label"),
    "a release name of 27 characters": (BASE.replace("releaseName: rollout-staging", "releaseName: " + "r" * 27), "is not a release name"),
    "a flag key with a final newline": (BASE.replace("    aatc:\n", '    "aatc\\n":\n'), "rollout:flags"),
    "a metric name with a space and a brace": (add_key('  rollout:metrics:\n    requestsTotal: "http requests{"'), "is not a Prometheus metric name"),
    "a metric name starting with a digit": (add_key("  rollout:metrics:\n    probeSuccess: 1probe"), "is not a Prometheus metric name"),
    "a reserved metric name": (add_key("  rollout:metrics:\n    probeSuccess: __probe"), "is not a Prometheus metric name"),
    "a metric name with a final newline": (add_key('  rollout:metrics:\n    probeSuccess: "probe_success\\n"'), "is not a Prometheus metric name"),
    # secrets
    "clear text starting with !": (BASE.replace(f"secure: {CIPHERTEXT}", f"secure: !{CLEAR}"), "this YAML tag is not allowed"),
    "clear text starting with ! instead of secure:": (BASE.replace(f"  secure: {CIPHERTEXT}", f"  !{CLEAR}"), "this YAML tag is not allowed"),
    "clear text under secure:": (BASE.replace(f"secure: {CIPHERTEXT}", f"secure: {CLEAR}"), "is not ciphertext"),
    "an empty secure:": (BASE.replace(f"secure: {CIPHERTEXT}", 'secure: ""'), "is not ciphertext"),
    "a truncated ciphertext": (BASE.replace(f"secure: {CIPHERTEXT}", f"secure: {CIPHERTEXT[:30]}"), "is not ciphertext"),
    "an anchor on a secret": (BASE.replace(f"secure: {CIPHERTEXT}", f"secure: &x {CIPHERTEXT}"), "anchors and aliases are not allowed in secrets"),
    "an anchor on a secret's mapping": (BASE.replace("    smtpPassword:\n", "    smtpPassword: &x\n"), "anchors and aliases are not allowed in secrets"),
    "an alias to a secret": (
        BASE.replace("  rollout:tier: staging\n", f"  rollout:tier: staging\n  rollout:x: &s {{secure: {CIPHERTEXT}}}\n")
        .replace(f"    smtpPassword:\n      secure: {CIPHERTEXT}", "    smtpPassword: *s"),
        "anchors and aliases are not allowed in secrets",
    ),
}

COMMANDS = {
    "check": ["check"],
    "status": ["status"],
    "flags": ["flags"],
    "render": ["render", "--out", "{out}"],
    "advance": ["advance"],
    "rollback": ["rollback", "--reason", "page"],
}


@pytest.fixture
def odd_project(tmp_path: Path) -> Path:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((FIXTURE / "Pulumi.yaml").read_text())
    return tmp_path


def test_the_base_file_loads(odd_project, capsys):
    (odd_project / "stacks" / "Pulumi.odd.yaml").write_text(BASE)
    assert main(["--project", str(odd_project), "check", "--stack", "odd"]) == 0


@pytest.mark.parametrize("command", COMMANDS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_command_refuses_it_with_exit_2_and_one_line(odd_project, tmp_path, capsys, case, command):
    text, expected = CASES[case]
    target = odd_project / "stacks" / "Pulumi.odd.yaml"
    target.write_text(text)
    before = target.read_bytes()
    args = [a.replace("{out}", str(tmp_path / "out")) for a in COMMANDS[command]]
    code = main(["--project", str(odd_project), args[0], "--stack", "odd", *args[1:]])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    lines = captured.err.splitlines()
    assert lines and all(line.startswith(f"{SHOWN}: ") for line in lines), lines
    assert any(expected in line for line in lines), lines
    assert "internal error" not in captured.err and "Traceback" not in captured.err
    assert CLEAR not in captured.out + captured.err
    assert target.read_bytes() == before
    count("stack file shapes", f"{command}: refused with exit 2")


def test_an_alias_bomb_is_refused_in_bounded_memory(odd_project, capsys):
    """A few KB that expand to 2^60 nodes: refused before anything is expanded."""
    target = odd_project / "stacks" / "Pulumi.odd.yaml"
    target.write_text(bomb(60, 2))
    assert len(target.read_bytes()) < 16_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["--project", str(odd_project), "status", "--stack", "odd"]) == 2
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    # ru_maxrss is a high-water mark: the refusal added (almost) nothing to it.
    assert grown_kb < 50_000, grown_kb
    assert "aliases repeat more than" in capsys.readouterr().err


def test_aliases_within_the_limit_still_load(odd_project, capsys):
    """Anchors and aliases outside secrets are YAML a stack file may use."""
    text = BASE.replace("requests: {cpu: 250m, memory: 256Mi}", "requests: &req {cpu: 250m, memory: 256Mi}").replace(
        "limits: {cpu: \"1\", memory: 512Mi}", "limits: *req"
    )
    (odd_project / "stacks" / "Pulumi.odd.yaml").write_text(text)
    assert main(["--project", str(odd_project), "check", "--stack", "odd"]) == 0, capsys.readouterr().err


def test_a_100_service_stack_written_with_anchors_loads_far_below_the_alias_limit(odd_project, capsys):
    """A fleet sharing its resources, health checks, routes, rollout and flag strategies through aliases."""
    from rollout.load.strict_yaml import MAX_ALIAS_NODES, check_structure
    from stackfiles import anchored_fleet

    text = anchored_fleet(services=100, flags=100)
    (odd_project / "stacks" / "Pulumi.odd.yaml").write_text(text)
    assert main(["--project", str(odd_project), "status", "--stack", "odd"]) == 0, capsys.readouterr().err
    added = check_structure(text, SHOWN)
    # About 20,000 nodes repeated: the limit is well above it.
    assert 10_000 < added <= MAX_ALIAS_NODES / 20, added


def test_the_alias_limit_says_what_to_do(odd_project, capsys):
    (odd_project / "stacks" / "Pulumi.odd.yaml").write_text(bomb(40, 2))
    assert main(["--project", str(odd_project), "status", "--stack", "odd"]) == 2
    err = capsys.readouterr().err
    assert "write the repeated blocks out, or use fewer aliases" in err, err
