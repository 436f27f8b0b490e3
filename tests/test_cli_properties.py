"""Property tests of ``rollout.cli.main`` over every command's arguments.

Argument lists mix valid and invalid pieces: unknown and abbreviated options,
missing required options, bad stack names (path traversal, empty, unicode, NUL
bytes, too long), unknown services, bad --format/--track choices, non-numeric
--wait/--deadline, evidence and state files that do not exist, are not JSON or
are JSON of the wrong shape, --out at a file or where nothing can be written,
and monitoring URLs that are garbage or ``http://127.0.0.1:<port>`` with nothing
listening there. Whatever they hold, ``main()``:

- returns 0, 1 or 2 (3 is an internal error), never raises, prints no traceback
  and logs no exception;
- writes a message on stderr whenever it exits 2;
- never exits 0 for a stack that does not exist;
- leaves every stack file as it was unless ``advance``/``rollback`` exits 0, and
  then has changed exactly the named stack's file.

Every case runs in a fresh scratch copy of the project (Pulumi.yaml, stacks/
and the input files below), which is also the current folder, so nothing
outside it is read as the project or written. Each HTTP call gets --deadline
0.05 s (or an invalid --deadline, which stops at parsing), so nothing waits.

Inputs that once broke a command are also run on their own, in REGRESSIONS.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import FIXTURE, ROOT, STACKS
from figures import count
from rollout.cli import build_parser, main
from rollout.load.stack import load_stack
from rollout.model.state import rollout_state
from servers import closed_port

pytestmark = pytest.mark.slow

SERVICE = "genesis"
#: Nothing listens here: the port was free when the module was imported.
NOWHERE = f"http://127.0.0.1:{closed_port()}"
#: Stands for the scratch project's folder in generated arguments.
SCRATCH = "{scratch}"
EDITING_COMMANDS = ("advance", "rollback")


def _settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- the scratch project and its input files ----------------------------------------

_STATES = {stack: rollout_state(load_stack(stack, FIXTURE), stack) for stack in STACKS}

#: Input files of the scratch project, by name; the generators refer to them.
INPUT_FILES: dict[str, str | bytes] = {
    "afile": "a regular file where a folder is expected\n",
    "not-json.txt": "evidence: yes\n",
    "binary.bin": b"\xff\xfe\x00\x01",
    "empty.json": "",
    "list.json": "[1, 2]",
    "string.json": '"x"',
    "object.json": "{}",
    "evidence-null-state.json": json.dumps({"deployedState": None}),
    "evidence-state-list.json": json.dumps({"deployedState": []}),
    "evidence-no-services.json": json.dumps({"deployedState": {"services": {}}}),
    "state-no-services.json": json.dumps({"stack": "dev"}),
    "state-services-list.json": json.dumps({"stack": "dev", "services": []}),
    **{f"state-{s}.json": json.dumps(state) for s, state in _STATES.items()},
    **{f"outputs-{s}.json": json.dumps({"rolloutState": state}) for s, state in _STATES.items()},
    **{f"evidence-{s}.json": json.dumps({"deployedState": state}) for s, state in _STATES.items()},
    # Values that would forge a line of output if printed as they are.
    "evidence-forged.json": json.dumps({"deployedState": {
        "stack": "staging\nstack staging: healthy", "services": {"genesis\r\x1b[2K": {"weight": "1\n", "stageStartedAt": "\u2028"}},
    }}),
    "state-forged.json": json.dumps({"stack": "dev\x1b[2K\nok", "services": {}}),
    # Shapes that once ended in an internal error (REGRESSIONS).
    "bug-evidence-state-string.json": json.dumps({"deployedState": "x"}),
    "bug-evidence-service-string.json": json.dumps({"deployedState": {"stack": "dev", "services": {SERVICE: "x"}}}),
    "bug-evidence-service-empty.json": json.dumps({"deployedState": {"stack": "dev", "services": {SERVICE: {}}}}),
    "bug-state-service-number.json": json.dumps({"stack": "dev", "services": {SERVICE: 5}}),
    "bug-state-service-no-start.json": json.dumps({"stack": "dev", "services": {SERVICE: {"weight": 5}}}),
}


def prepare(folder: Path) -> Path:
    """A scratch project in ``folder``: Pulumi.yaml, stacks/ and INPUT_FILES."""
    folder.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", folder / "Pulumi.yaml")
    shutil.copytree(FIXTURE / "stacks", folder / "stacks")
    (folder / "folder").mkdir()
    for name, content in INPUT_FILES.items():
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return folder


def stack_files(project: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((project / "stacks").glob("Pulumi.*.yaml"))}


# --- running main() ------------------------------------------------------------------


class _Records(logging.Handler):
    """Log records emitted by the thread that runs the command.

    Only that thread's: another thread's records would land in whichever case
    runs then (test_flags_leaves_no_thread_behind_that_logs_a_traceback checks
    that flagd's file watcher thread logs nothing after ``rollout flags``).
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)


def run_main(argv: list[str]) -> tuple[object, str, str, list[logging.LogRecord]]:
    out, err, records = io.StringIO(), io.StringIO(), _Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    finally:
        root.removeHandler(records)
    return code, out.getvalue(), err.getvalue(), records.records


def parse(argv: list[str]):
    """What the parser makes of ``argv``: (namespace, None), or (None, the exit code it asked for)."""
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            return build_parser().parse_args(argv), None
        except SystemExit as exit_:
            return None, exit_.code


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs one case in a fresh scratch project, the current folder while it runs."""
    monkeypatch.delenv("ROLLOUT_DEBUG", raising=False)
    cases = iter(range(10**9))

    def run_case(command_argv: list[str]):
        project = prepare(tmp_path / f"case-{next(cases)}")
        argv = ["--project", str(project), *(a.replace(SCRATCH, str(project)) for a in command_argv)]
        before = stack_files(project)
        monkeypatch.chdir(project)
        try:
            code, out, err, records = run_main(argv)
            after = stack_files(project)
            parsed = parse(argv)
        finally:
            monkeypatch.chdir(tmp_path)
            shutil.rmtree(project)
        return parsed, code, out, err, records, before, after

    return run_case


def check_case(workspace, command_argv: list[str], topic: str = "cli arguments") -> int:
    """Run one case and assert the properties of the module docstring."""
    (args, parse_exit), code, out, err, records, before, after = workspace(command_argv)
    count(topic, "cases tried")
    count(topic, f"exit {code}")
    shown = f"rollout {' '.join(map(repr, command_argv))}: exit {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert type(code) is int and code in (0, 1, 2), shown
    assert "Traceback" not in out and "Traceback" not in err, shown
    logged = [r for r in records if r.exc_info]
    assert not logged, f"{shown}\nlogged with an exception: {[r.getMessage() for r in logged]}"
    if code == 2:
        assert err.strip(), shown
    # Every line reaches the terminal printable: a control character in an
    # argument, a file or an answer is shown escaped, never forging a line.
    unprintable = [line for line in (out + err).split("\n") if not all(ch.isprintable() for ch in line)]
    assert not unprintable, f"{shown}\nunprintable: {unprintable[:3]!r}"
    if args is None and code == 2:
        assert len(err.strip().splitlines()) == 1, f"a refused command line is one line\n{shown}"
    if args is None:
        assert code == (0 if parse_exit == 0 else 2), shown
        if code == 0:
            assert out.startswith("usage:"), shown
    elif args.stack not in STACKS:
        assert code != 0, f"a stack that does not exist exited 0\n{shown}"
    if command_argv[0] in EDITING_COMMANDS:
        changed = {name for name in before if before[name] != after.get(name)} | (set(after) - set(before))
        if code == 0 and args is not None:
            assert changed == {f"Pulumi.{args.stack}.yaml"}, (changed, shown)
        else:  # refused, bad input, or --help
            assert not changed, f"exit {code} but {sorted(changed)} changed\n{shown}"
    return code


# --- argument generators -------------------------------------------------------------


def scratch(name: str) -> str:
    return f"{SCRATCH}/{name}"


def texts(max_size: int = 12):
    return st.text(max_size=max_size)


#: Text mixing letters with what a terminal would act on: control characters,
#: escape sequences, line and paragraph separators, bidirectional overrides.
CONTROL_TEXT = st.lists(
    st.one_of(
        st.characters(categories=("Cc", "Cf", "Zl", "Zp", "Zs"), exclude_characters="\x00"),
        st.sampled_from(["a", "b", ":", " ", "stack staging: healthy", "\x1b[2K", "\x1b]0;x\x07"]),
    ),
    min_size=1, max_size=6,
).map("".join).filter(lambda t: not all(ch.isprintable() for ch in t))


def mixed(valid: list[str], invalid: list[str], *more_invalid) -> st.SearchStrategy[str]:
    """Valid values three times in four, so that many cases get past the parser."""
    bad = st.one_of(st.sampled_from(invalid), *more_invalid)
    return st.tuples(st.booleans(), st.booleans()).flatmap(lambda coins: bad if all(coins) else st.sampled_from(valid))


STACK_VALUES = mixed(
    list(STACKS),
    ["", "qa", "DEV", " dev", "dev ", "dev\n", "dev\x00", "d\x00ev", "\x00", "dév", "Ω", "生产", "..", ".",
     "../x", "../stacks/Pulumi.dev", "dev/../dev", "/etc/passwd", "-dev", "x" * 101, "x" * 300],
    texts(), CONTROL_TEXT,
)
SERVICE_VALUES = mixed([SERVICE], ["nope", "", "GENESIS", "../genesis", "genesis\x00", "génesis", "\udcff", "genesis\n"],
                       texts(), CONTROL_TEXT)
REASONS = mixed(
    ["why", "P99 over budget: 1.4 s"], ["", "  ", "a\nb", "\x00", "\udcff", '"quoted": #x\n- y'], texts(30), CONTROL_TEXT
)
TARGETING_KEYS = mixed(["ci", "user-1"], ["", "\x00", "\udcff"], texts())
FLAG_FORMATS = mixed(["env", "json"], ["text", "xml", "", "ENV"])
TRACKS = mixed(["stable", "canary"], ["beta", "", "Canary"])
STATUS_FORMATS = mixed(["text", "json"], ["env", "yaml", ""])
WAITS = mixed(["0", "0.0", "-0"], ["abc", "", "nan", "inf", "-1", "1e999", "0x10", "86400"])
DEADLINES = mixed(["0.05"], ["0", "-1", "abc", "", "nan", "inf", "1e9"])
TIMEOUTS = mixed(["0.05"], ["0", "x", "nan"])
URLS = mixed(
    [NOWHERE, f"{NOWHERE}/", f"{NOWHERE}/prefix", NOWHERE.replace("http://", "http://user:pw@")],
    ["", "garbage", "http://", "http://[::1", "ftp://127.0.0.1:1", "http://127.0.0.1:99999", "http://127.0.0.1:x",
     NOWHERE.removeprefix("http://"), f"{NOWHERE}/\n", "\x00", "//127.0.0.1", "http:///x", "https://"],
    # Never a host: without "//" nothing here can name one.
    texts(20).filter(lambda s: "//" not in s),
)
GIT_REFS = mixed(["HEAD", "HEAD~1", "no-such-ref"], ["", "-x", "\x00", "main:stacks"])
BAD_FILES = [
    scratch("missing.json"), scratch("folder"), scratch("not-json.txt"), scratch("binary.bin"), scratch("empty.json"),
    scratch("list.json"), scratch("string.json"), scratch("object.json"), "", "\x00", scratch("x" * 300),
]
CONTROL_PATHS = CONTROL_TEXT.map(lambda t: scratch(t.replace("/", "_")))
EVIDENCE_FILES = mixed(
    [scratch(f"evidence-{s}.json") for s in STACKS],
    BAD_FILES + [scratch(n) for n in (
        "evidence-null-state.json", "evidence-state-list.json", "evidence-no-services.json",
        "bug-evidence-state-string.json", "bug-evidence-service-string.json", "bug-evidence-service-empty.json",
        "evidence-forged.json",
    )],
    CONTROL_PATHS,
)
STATE_FILES = mixed(
    [scratch(f"{kind}-{s}.json") for kind in ("state", "outputs") for s in STACKS],
    BAD_FILES + [scratch(n) for n in (
        "state-no-services.json", "state-services-list.json", "bug-state-service-number.json",
        "bug-state-service-no-start.json", "state-forged.json",
    )],
    CONTROL_PATHS,
)
RENDER_OUTS = mixed(
    [scratch("out"), scratch("folder"), scratch("out/deeper")],
    [scratch("afile"), scratch("afile/below"), "/proc/rollout-nowhere", "", "\x00", scratch("x" * 300)],
    CONTROL_PATHS,
)
EVIDENCE_OUTS = mixed(
    [scratch("evidence.json"), scratch("folder/evidence.json"), scratch("afile")],
    ["", "\x00", scratch("folder"), scratch("afile/evidence.json"), "/proc/rollout-nowhere/evidence.json",
     "/dev/full", scratch("x" * 256)],
    CONTROL_PATHS,
)

#: Pieces any command may get: unknown options, abbreviations, stray words, help.
EXTRAS = st.sampled_from([
    ("--colour", "blue"), ("--force",), ("-x",), ("--stacks", "dev"), ("positional",), ("--",), ("--stack",),
    ("--stac", "dev"), ("--sta", "dev"), ("--serv", SERVICE), ("--form", "json"), ("-s",), ("--project", "."),
    ("-h",), ("--out",), ("--wait", "0"), ("--reason",),
])

#: Per command: (option, values, how often it is given: "always", "mostly" or "sometimes").
SPECS = {
    "render": [("--stack", STACK_VALUES, "mostly"), ("--out", RENDER_OUTS, "mostly")],
    "check": [("--stack", STACK_VALUES, "mostly"), ("--evidence", EVIDENCE_FILES, "sometimes"), ("--base", GIT_REFS, "sometimes")],
    "flags": [
        ("--stack", STACK_VALUES, "mostly"),
        ("--format", FLAG_FORMATS, "sometimes"),
        ("--targeting-key", TARGETING_KEYS, "sometimes"),
        ("--track", TRACKS, "sometimes"),
    ],
    "status": [
        ("--stack", STACK_VALUES, "mostly"),
        ("--service", SERVICE_VALUES, "sometimes"),
        ("--format", STATUS_FORMATS, "sometimes"),
    ],
    "verify": [
        ("--stack", STACK_VALUES, "mostly"),
        ("--prometheus", URLS, "mostly"),
        ("--alertmanager", URLS, "mostly"),
        ("--grafana", URLS, "sometimes"),
        ("--wait", WAITS, "always"),
        ("--deadline", DEADLINES, "always"),
        ("--timeout", TIMEOUTS, "sometimes"),
    ],
    "evidence": [
        ("--stack", STACK_VALUES, "mostly"),
        ("--prometheus", URLS, "mostly"),
        ("--deployed-state", STATE_FILES, "mostly"),
        ("--staging-state", STATE_FILES, "sometimes"),
        ("--base", GIT_REFS, "sometimes"),
        ("--out", EVIDENCE_OUTS, "sometimes"),
        ("--deadline", DEADLINES, "always"),
        ("--timeout", TIMEOUTS, "sometimes"),
    ],
    "advance": [
        ("--stack", STACK_VALUES, "mostly"),
        ("--service", SERVICE_VALUES, "sometimes"),
        ("--evidence", EVIDENCE_FILES, "sometimes"),
        ("--reason", REASONS, "sometimes"),
    ],
    "rollback": [
        ("--stack", STACK_VALUES, "mostly"),
        ("--service", SERVICE_VALUES, "sometimes"),
        ("--reason", REASONS, "mostly"),
    ],
}
#: How many of three coin tosses must come up for an option to be given
#: (hypothesis' booleans are fair; its numbers lean towards the edges).
_TOSSES = {"always": 0, "mostly": 1, "sometimes": 2}


@st.composite
def arguments(draw, command: str) -> list[str]:
    """``command`` and a shuffled mix of its options (valid or not) and extra pieces."""
    pieces: list[tuple[str, ...]] = []
    for option, values, odds in SPECS[command]:
        if sum(draw(st.lists(st.booleans(), min_size=3, max_size=3))) >= _TOSSES[odds]:
            pieces.append((option, draw(values)))
    if all(draw(st.lists(st.booleans(), min_size=3, max_size=3))):
        pieces.extend(draw(st.lists(EXTRAS, min_size=1, max_size=2)))
    pieces = draw(st.permutations(pieces))
    return [command, *(part for piece in pieces for part in piece)]


# --- the properties, command by command ----------------------------------------------
# Parsing failures take a millisecond; a run that reaches the command takes up to a
# few tenths of a second (check runs the program under mocks), hence the budgets.


@_settings(120)
@given(argv=arguments("render"))
@example(argv=["render", "--stack", "dev", "--out", scratch("out")])
@example(argv=["render", "--stack", "dev", "--out", scratch("afile")])
def test_render_exits_0_1_or_2_whatever_its_arguments(workspace, argv):
    check_case(workspace, argv)


@_settings(50)
@given(argv=arguments("check"))
@example(argv=["check", "--stack", "production"])
@example(argv=["check", "--stack", "staging", "--evidence", scratch("evidence-staging.json")])
def test_check_exits_0_1_or_2_whatever_its_arguments(workspace, argv):
    check_case(workspace, argv)


@_settings(120)
@given(argv=arguments("flags"))
@example(argv=["flags", "--stack", "staging", "--format", "json", "--track", "canary"])
def test_flags_exits_0_1_or_2_whatever_its_arguments(workspace, argv):
    check_case(workspace, argv)


@_settings(150)
@given(argv=arguments("status"))
@example(argv=["status", "--stack", "production", "--format", "json", "--service", SERVICE])
def test_status_exits_0_1_or_2_whatever_its_arguments(workspace, argv):
    check_case(workspace, argv)


@_settings(120)
@given(argv=arguments("verify"))
@example(argv=["verify", "--stack", "dev", "--prometheus", NOWHERE, "--alertmanager", NOWHERE, "--grafana", NOWHERE,
               "--wait", "0", "--deadline", "0.05"])
def test_verify_exits_0_1_or_2_whatever_its_arguments(workspace, argv):
    check_case(workspace, argv)


@_settings(120)
@given(argv=arguments("evidence"))
@example(argv=["evidence", "--stack", "production", "--prometheus", NOWHERE, "--deployed-state",
               scratch("outputs-production.json"), "--staging-state", scratch("state-staging.json"),
               "--out", scratch("evidence.json"), "--deadline", "0.05"])
def test_evidence_exits_0_1_or_2_whatever_its_arguments(workspace, argv):
    check_case(workspace, argv)


@_settings(90)
@given(argv=arguments("advance"))
@example(argv=["advance", "--stack", "staging", "--reason", "why"])
@example(argv=["advance", "--stack", "staging", "--evidence", scratch("evidence-staging.json")])
def test_advance_exits_0_1_or_2_and_edits_only_on_0(workspace, argv):
    check_case(workspace, argv)


@_settings(90)
@given(argv=arguments("rollback"))
@example(argv=["rollback", "--stack", "production", "--reason", "P99 over budget"])
def test_rollback_exits_0_1_or_2_and_edits_only_on_0(workspace, argv):
    check_case(workspace, argv)


BAD_PROJECTS = ["", "\x00", scratch("missing"), scratch("afile"), scratch("folder"), "/proc", "x" * 5000, scratch("x" * 300)]
READ_ONLY = [
    ["status", "--stack", "dev"],
    ["flags", "--stack", "staging"],
    ["render", "--stack", "production", "--out", scratch("out")],
    ["check", "--stack", "local"],
]


@_settings(60)
@given(project=st.sampled_from(BAD_PROJECTS), command=st.sampled_from(READ_ONLY))
def test_a_project_that_is_not_one_exits_2(workspace, project, command):
    # A later --project wins over the scratch one run_case puts first.
    code = check_case(workspace, ["--project", project, *command])
    assert code == 2


# --- inputs that once ended in an internal error ----------------------------------------

REGRESSIONS = [
    pytest.param(
        ["check", "--stack", "dev", "--evidence", scratch("bug-evidence-state-string.json")],
        id="check --evidence whose deployedState is a string is refused by the gates",
    ),
    pytest.param(
        ["check", "--stack", "dev", "--evidence", scratch("bug-evidence-service-string.json")],
        id="check --evidence whose deployed service is a string is refused by the gates",
    ),
    pytest.param(
        ["advance", "--stack", "dev", "--evidence", scratch("bug-evidence-service-empty.json")],
        id="advance --evidence whose deployed service has no weight is refused by the gates",
    ),
    pytest.param(
        ["evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deadline", "0.05",
         "--deployed-state", scratch("bug-state-service-number.json")],
        id="evidence --deployed-state whose service is a number is bad input",
    ),
    pytest.param(
        ["evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deadline", "0.05",
         "--deployed-state", scratch("bug-state-service-no-start.json")],
        id="evidence --deployed-state whose service has no stageStartedAt is bad input",
    ),
    pytest.param(
        ["evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deadline", "0.05",
         "--deployed-state", scratch("state-dev.json"), "--out", scratch("folder")],
        id="evidence --out naming a folder is bad input",
    ),
    pytest.param(
        ["evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deadline", "0.05",
         "--deployed-state", scratch("state-dev.json"), "--out", scratch("afile/evidence.json")],
        id="evidence --out below a regular file is bad input",
    ),
    pytest.param(
        ["evidence", "--stack", "dev", "--prometheus", NOWHERE, "--deadline", "0.05",
         "--deployed-state", scratch("state-dev.json"), "--out", "/proc/rollout-nowhere/evidence.json"],
        id="evidence --out where nothing can be written is bad input",
    ),
]


@pytest.mark.parametrize("argv", REGRESSIONS)
def test_an_input_that_once_broke_a_command_keeps_the_properties(workspace, argv):
    code = check_case(workspace, argv, topic="cli arguments: regressions")
    assert code in (1, 2)


def test_flags_leaves_no_thread_behind_that_logs_a_traceback(workspace):
    """flagd's file watcher wakes once after its provider's shutdown; the flag file must still be there."""
    logged: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record):
            logged.append(record)

    handler = Collect(level=logging.ERROR)
    logging.getLogger().addHandler(handler)
    try:
        before = set(threading.enumerate())
        check_case(workspace, ["flags", "--stack", "dev"], topic="cli arguments: regressions")
        for thread in set(threading.enumerate()) - before:
            thread.join(timeout=5)
    finally:
        logging.getLogger().removeHandler(handler)
    assert not [r for r in logged if r.exc_info], [r.getMessage() for r in logged]


# --- HTTP framing: whatever the monitoring APIs send -------------------------------------
# One raw TCP server on 127.0.0.1 (tests/servers.py RawServer) answers every
# request with the bytes of the current example: a status line (valid or not),
# headers (too many, control characters, Content-Length right, short, long or
# garbage, chunked framing right or wrong, redirects), and a body that is random
# bytes or JSON of Prometheus', Alertmanager's and Grafana's shapes with values
# of every type. `rollout evidence` and `rollout verify` keep the properties
# above, and evidence records every query as one of its statuses, a number only
# with "ok".

from servers import RawServer  # noqa: E402

_KEYS = st.sampled_from(["status", "data", "resultType", "result", "value", "values", "metric", "error",
                         "errorType", "activeTargets", "labels", "health", "lastError", "groups", "rules", "name",
                         "config", "original", "database", "job", "instance"])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.sampled_from(
        ["success", "vector", "matrix", "scalar", "string", "1", "0", "NaN", "+Inf", "-Inf", "5_0000", " 1", "1e400",
         "0x10", "up", "ok", "prometheus", "route: {}", "\x1b[2K\nstack staging: healthy"]),
    st.text(max_size=6),
)
JSON_VALUES = st.recursive(
    _SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=20,
)
_SAMPLES = st.lists(st.one_of(_SCALARS, st.tuples(_SCALARS, _SCALARS).map(list)), max_size=3)
PROMETHEUS_RESULTS = st.builds(
    lambda kind, result: {"status": "success", "data": {"resultType": kind, "result": result}},
    st.sampled_from(["vector", "matrix", "scalar", "string", "histogram"]),
    st.one_of(
        JSON_VALUES,
        st.lists(st.fixed_dictionaries({"metric": st.just({}), "value": st.one_of(_SAMPLES, JSON_VALUES)}), max_size=2),
        st.lists(st.fixed_dictionaries({"metric": st.just({}), "values": st.lists(_SAMPLES, max_size=3)}), max_size=2),
    ),
)
BODIES = st.one_of(
    PROMETHEUS_RESULTS.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda d: json.dumps(d).encode()),
    st.integers(1, 3000).map(lambda depth: b'{"status": "success", "data": ' + b"[" * depth + b"]" * depth + b"}"),
    st.binary(max_size=64),
)
STATUS_LINES = st.one_of(
    st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 503 Unavailable",
                     b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 302 Found", b"HTTP/1.1 307 Temporary Redirect",
                     b"HTTP/1.1 OK", b"HTTP/1.1 2000 OK", b"ICY 200 OK", b"HTTP/2 200", b"", b"HTTP/1.1 200 OK\x00"]),
    st.binary(max_size=20).filter(lambda b: b"\n" not in b),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["application/json", "0", "-1", "x", "99999999999", "chunked", "gzip", "/", "http://127.0.0.1:1/x",
                     "file:///etc/passwd", "//elsewhere/x"]),
    st.text(st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=10),
)
HEADERS = st.lists(st.tuples(
    st.sampled_from(["Content-Type", "Location", "Content-Encoding", "X-Any", "Transfer-Encoding", "Content-Length"]),
    HEADER_VALUES,
), max_size=4)


@st.composite
def http_answers(draw) -> bytes:
    status = draw(STATUS_LINES)
    headers = draw(HEADERS)
    body = draw(BODIES)
    framing = draw(st.sampled_from(["length", "length", "short", "long", "close", "chunked", "bad chunk"]))
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "short":
        headers.append(("Content-Length", str(len(body) + draw(st.integers(1, 1000)))))
    elif framing == "long":
        headers.append(("Content-Length", str(max(0, len(body) - draw(st.integers(1, 10))))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    elif framing == "bad chunk":
        headers.append(("Transfer-Encoding", "chunked"))
        body = b"zz\r\n" + body
    if draw(st.integers(0, 9)) == 0:
        headers.extend((f"X-Many-{i}", "y") for i in range(draw(st.integers(95, 130))))
    head = status + b"".join(b"\r\n" + k.encode() + b": " + v.encode("latin-1") for k, v in headers)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def wire(tmp_path):
    """The raw server, the current answer (a one-item list to set), and a scratch project."""
    answer = [b""]
    project = prepare(tmp_path / "wire")
    with RawServer(lambda request, send, stopped: send(answer[0])) as server:
        yield server, answer, project


_STATUSES = {"ok", "empty", "nan", "infinite", "error", "timeout", "unreachable"}


_VECTOR = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]}})
VALID_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_VECTOR), _VECTOR.encode())


@_settings(150)
@given(data=http_answers())
@example(data=VALID_ANSWER)
@example(data=VALID_ANSWER.replace(b"Content-Length: ", b"Content-Length: 1"))
@example(data=VALID_ANSWER.replace(b"HTTP/1.1 200 OK", b"HTTP/1.1 OK"))
@example(data=VALID_ANSWER.replace(b"Content-Type", b"\r\n".join(b"X-%d: y" % i for i in range(120)) + b"\r\nContent-Type"))
@example(data=VALID_ANSWER.replace(b'"1"]', b'true]'))
@example(data=VALID_ANSWER.replace(b'"1"]', b'"5_0000"]'))
def test_evidence_records_whatever_prometheus_sends_as_a_status(wire, data):
    server, answer, project = wire
    answer[0] = data
    out = project / "evidence.json"
    out.unlink(missing_ok=True)
    argv = ["--project", str(project), "evidence", "--stack", "staging", "--prometheus", server.url,
            "--deployed-state", str(project / "outputs-staging.json"), "--out", str(out),
            "--deadline", "0.2", "--timeout", "0.2"]
    code, stdout, stderr, records = run_main(argv)
    shown = f"{data[:300]!r}: exit {code}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}"
    count("http framing", "answers tried on evidence")
    assert code == 0, shown
    assert not [r for r in records if r.exc_info], shown
    assert all(ch.isprintable() for line in (stdout + stderr).split("\n") for ch in line), shown
    for query in json.loads(out.read_text())["services"][SERVICE]["queries"].values():
        assert query["status"] in _STATUSES, shown
        assert (query["value"] is not None) == (query["status"] == "ok"), shown
        count("http framing", f"queries recorded {query['status']}")


@_settings(100)
@given(data=http_answers(), component=st.sampled_from(["prometheus", "alertmanager", "grafana"]))
@example(data=VALID_ANSWER.replace(b"Content-Length: ", b"Content-Length: 1"), component="prometheus")
@example(data=VALID_ANSWER.replace(b"HTTP/1.1 200 OK", b"HTTP/1.1 OK"), component="alertmanager")
def test_verify_names_the_component_whatever_it_sends(wire, data, component):
    server, answer, project = wire
    answer[0] = data
    urls = {"prometheus": NOWHERE, "alertmanager": NOWHERE, "grafana": NOWHERE, component: server.url}
    argv = ["--project", str(project), "verify", "--stack", "staging", "--prometheus", urls["prometheus"],
            "--alertmanager", urls["alertmanager"], "--grafana", urls["grafana"], "--wait", "0",
            "--deadline", "0.2", "--timeout", "0.2"]
    code, stdout, stderr, records = run_main(argv)
    shown = f"{data[:300]!r}: exit {code}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}"
    count("http framing", "answers tried on verify")
    assert code == 1, shown
    assert not [r for r in records if r.exc_info], shown
    lines = stdout.split("\n")
    assert all(ch.isprintable() for line in lines + stderr.split("\n") for ch in line), shown
    assert any(line.startswith(f"FAILED  {component}: ") for line in lines), shown
# --- generated stack files: shapes, ranges, tags, names, symlinks; a rollback always goes through ----

_STAGING_TEXT = (FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text()
_LAST = '          - weight: 10\n            startedAt: "2026-11-18T09:00:00Z"\n'

STACK_EDITS = st.one_of(
    st.sampled_from([
        ("rollout:tier: staging", "rollout:tier: staging\n  rollout:x: &a [*a]"),
        ("rollout:tier: staging", "rollout:tier: staging\n  rollout:x: " + "[" * 300 + "]" * 300),
        ("rollout:tier: staging", "rollout:tier: staging\n  rollout:x: [" + ", ".join(
            ["&l0 [x, x, x, x, x, x, x, x]"] + [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 8) + "]" for i in range(1, 12)]) + "]"),
        ("replicas: 1", "replicas: !!binary MjU="),
        ("replicas: 1", "replicas: false"),
        ("percentage: 25\n", "percentage: 031\n"),
        ("sustainFor: 5m", "sustainFor: 99999999999999d"),
        ('start: "2026-11-20T09:00:00Z"', 'start: "9999-12-31T09:00:00Z"'),
        ('"2026-11-16T09:00:00Z"', '"0001-01-01T00:00:00+01:00"'),
        ("- name: genesis", '- name: "genesis\\n"'),
        ("- name: genesis", "- name: " + "g" * 63),
        ("\n", "\r\n"),
        ("config:\n", "config: &c\n"),
    ]),
    # Entries a fast clock wrote, minutes to years ahead: status and advance may refuse, a rollback goes through.
    st.integers(min_value=1, max_value=10**8).map(
        lambda s: (_LAST, _LAST + f'          - weight: 25\n            startedAt: "{_ahead(s)}"\n')),
    # Any time at all in the history.
    st.datetimes(timezones=st.timezones()).map(lambda d: ('"2026-11-18T09:00:00Z"', f'"{d.isoformat()}"')),
)


def _ahead(seconds: int) -> str:
    from datetime import datetime, timedelta, timezone

    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment.year < 3000 else "2999-12-31T00:00:00Z"


STACK_COMMANDS = st.sampled_from([
    ["status", "--stack", "staging"], ["status", "--stack", "staging", "--format", "json"],
    ["flags", "--stack", "staging"], ["check", "--stack", "staging"],
    ["render", "--stack", "staging", "--out", scratch("out")], ["advance", "--stack", "staging"],
    *[["rollback", "--stack", "staging", "--reason", "generated"]] * 4,
])


@pytest.fixture
def stack_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One case: the staging file edited (and maybe a symlink to a file elsewhere), one command run."""
    monkeypatch.delenv("ROLLOUT_DEBUG", raising=False)
    cases = iter(range(10**9))

    def run_case(edits, symlinked: bool, command_argv: list[str]):
        project = prepare(tmp_path / f"stack-case-{next(cases)}")
        text = _STAGING_TEXT
        for old, new in edits:
            text = text.replace(old, new)
        path = project / "stacks" / "Pulumi.staging.yaml"
        real = path
        if symlinked:
            real = project / "elsewhere" / "staging.yaml"
            real.parent.mkdir()
            path.unlink()
            path.symlink_to(real)
        real.write_bytes(text.encode())
        argv = ["--project", str(project), *(a.replace(SCRATCH, str(project)) for a in command_argv)]
        monkeypatch.chdir(project)
        try:
            code, out, err, records = run_main(argv)
            result = (code, out, err, records, text, real.read_bytes().decode(), path.is_symlink())
        finally:
            monkeypatch.chdir(tmp_path)
            shutil.rmtree(project)
        return result

    return run_case


@_settings(150)
@given(edits=st.lists(STACK_EDITS, min_size=1, max_size=3), symlinked=st.booleans(), argv=STACK_COMMANDS)
def test_any_generated_stack_file_exits_0_1_or_2_and_a_rollback_of_a_loadable_one_goes_through(
    stack_workspace, edits, symlinked, argv
):
    code, out, err, records, before, after, still_a_link = stack_workspace(edits, symlinked, argv)
    topic = "cli: generated stack files"
    count(topic, "cases tried")
    count(topic, f"{argv[0]}: exit {code}")
    shown = f"{edits} symlinked={symlinked} rollout {argv}: exit {code}\nstderr: {err[-2000:]}"
    assert code in (0, 1, 2), shown
    assert "Traceback" not in err and "internal error" not in err, shown
    assert still_a_link == symlinked, "an edit replaced the symlink"
    if code == 2:
        assert err.strip() and all(line.startswith(("stacks/", "rollout:", "note:", "warning:")) for line in err.splitlines()), shown
    if argv[0] in EDITING_COMMANDS and code == 0:
        # Only lines added, in one place; CRLF stays CRLF.
        assert len(after) > len(before) and after.startswith(before[:200]) and after.endswith(before[-200:]), shown
        if "\r\n" in before:
            assert after.count("\n") == after.count("\r\n"), shown
    elif argv[0] in EDITING_COMMANDS:
        assert after == before, shown
    if argv[0] == "rollback":
        loadable = _loads_for_a_rollback(before)
        if loadable:
            assert code == 0, f"a rollback was refused\n{shown}"
            count(topic, "rollbacks of loadable files, gone through")


def _loads_for_a_rollback(text: str) -> bool:
    """Whether the file is valid as a rollback reads it (entries ahead of the clock allowed)."""
    import tempfile

    from rollout.load.clock import tolerate_future
    from rollout.model.errors import ConfigError
    from rollout.load.stack import read_stack_file, validate

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Pulumi.staging.yaml"
        path.write_bytes(text.encode())
        tolerate_future(True)
        try:
            validate(read_stack_file(path), "x")
            return True
        except ConfigError:
            return False
        finally:
            tolerate_future(False)




# --- stored values: what the stack files hold, shown by every renderer ---------------
# Control characters (CONTROL_TEXT) placed where validation accepts them: a
# stack's name (its file name), the promotesFrom naming that stack, a history
# entry's reason and a flag's description (a canary image refuses them: it is
# a reference of the distribution grammar). `status` (one stack and --all, text and Markdown), `plan` (text
# and mermaid) and `diff` show every line printable, and each value on the one
# line it belongs to: the tables keep their row count and their columns.

#: A pipe that separates two cells of a Markdown table (an escaped one does not).
_TABLE_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


def _no_space(text: str) -> str:
    return "".join("_" if ch.isspace() else ch for ch in text)


def _stored_project(folder: Path, name: str, image: str, reason: str, description: str) -> None:
    """A committed scratch project, then its stack files changed to hold the values."""
    import subprocess

    import yaml

    prepare(folder)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "stacks", "Pulumi.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)

    def edit(stack: str, change) -> None:
        path = folder / "stacks" / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(path.read_text())
        change(document["config"])
        path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))

    def staging(config) -> None:
        service = config["rollout:services"][0]
        service["canary"]["image"] = image
        service["rollout"]["history"][-1]["reason"] = reason
        config["rollout:flags"]["aatc"]["description"] = description

    edit("staging", staging)
    shutil.copy(folder / "stacks" / "Pulumi.staging.yaml", folder / "stacks" / f"Pulumi.{name}.yaml")
    from rollout.model.config import STACK_NAME

    if STACK_NAME.fullmatch(name):
        # promotesFrom must be a stack name; a file named otherwise is still listed by status --all.
        edit("production", lambda config: config.update({"rollout:promotesFrom": name}))


@_settings(60)
@given(name=CONTROL_TEXT.map(lambda t: t.replace("/", "_")), image=CONTROL_TEXT.map(_no_space),
       reason=CONTROL_TEXT, description=CONTROL_TEXT)
@example(name="q\x1b[2J\u202eq\nstack staging: healthy", image="\x1b[2K\u202e", reason="a\nb", description="\u2028")
@example(name="stack staging: healthy\x7f", image="\x7f", reason="\x7f", description="\x7f")
def test_stored_control_characters_reach_every_renderer_escaped(tmp_path_factory, name, image, reason, description):
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as scratch_folder:
        project = Path(scratch_folder) / "p"
        # An image is a reference of the distribution grammar (rollout.model.images): one
        # with a control character is refused at load, so only a valid one is stored.
        from rollout.model.images import ImageRefError, parse

        candidate = f"ghcr.io/example/genesis:1.5.0{image}"
        try:
            parse(candidate)
        except ImageRefError:
            candidate = "ghcr.io/example/genesis:1.5.0"
        else:
            assert all(ch.isprintable() for ch in candidate), candidate
        _stored_project(project, name, candidate, reason, description)
        stacks = len(list((project / "stacks").glob("Pulumi.*.yaml")))
        runs = {
            "status --all": ["status", "--all"],
            "status --all markdown": ["status", "--all", "--format", "markdown"],
            "status": ["status", "--stack", "staging"],
            "status production": ["status", "--stack", "production"],
            "plan": ["plan", "--stack", "production"],
            "plan mermaid": ["plan", "--stack", "production", "--format", "mermaid"],
            "diff": ["diff", "--stack", "staging"],
        }
        for what, argv in runs.items():
            code, out, err, records = run_main(["--project", str(project), *argv])
            shown = f"{what} ({name!r}, {image!r}, {reason!r}, {description!r}): exit {code}\n{out[-2000:]}\n{err[-2000:]}"
            count("stored values", f"{what}: exit {code}")
            assert code in ((0, 1) if what == "diff" else (0,)), shown
            assert not [r for r in records if r.exc_info], shown
            unprintable = [line for line in (out + err).split("\n") if not all(ch.isprintable() for ch in line)]
            assert not unprintable, f"{shown}\nunprintable: {unprintable[:3]!r}"
            lines = out.splitlines()
            # Each output's own shape: a value that started a line of its own would break it.
            if what in ("status", "status production"):
                assert all(line.startswith(("genesis: ", "  ", "safety flag ")) for line in lines), shown
            elif what == "status --all":
                assert len(lines) == 2 + stacks, shown  # "as at", the header, one row per stack and service
            elif what == "status --all markdown":
                assert len(lines) == 2 + stacks, shown
                assert all(len(_TABLE_CELL_SEPARATOR.findall(line)) == 10 for line in lines), shown
            elif what == "plan":
                assert len(lines) == 1 + 1 + 7 + 1, shown  # title, header, 7 stages, completion
            elif what == "plan mermaid":
                assert all(line == "gantt" or line.startswith("    ") for line in lines), shown
            elif what == "diff":
                assert all(line[:1] in ("+", "-", " ", "@", "\\") for line in lines), shown
