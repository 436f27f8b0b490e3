"""A scan for the stacks' secrets in clear text wherever they must not be.

Each secret of each stack (``rollout:secrets`` in stacks/Pulumi.<stack>.yaml) is
looked for in three forms: its ``secure:`` ciphertext, the example plaintext it
decrypts to with the passphrase the README documents, and a recognisable test
value (``SCAN-<stack>-<name>-d41d8cd9``) that the program is handed in place of
the decrypted value, as ``pulumi up`` hands it the real one. The password the
program generates (the harness' mock makes it ``generated-password-<resource>``)
is looked for too. Every text is scanned as it is and with each base64-looking
token decoded, since Kubernetes and Docker carry file contents in base64.

Places scanned: the inputs of every declared resource outside the paths the
program marked secret, and the stack's plain outputs; every file ``rollout
render`` writes (which only ever holds placeholders: the CLI never decrypts);
stdout and stderr of ``check``, ``render``, ``status`` and ``flags``; the log
records of a program run at DEBUG; and the error messages of stack files broken
next to a secret, from the CLI and from the program.

tests/test_stack_secrets.py checks the ciphertexts themselves; tests/test_program.py
and tests/test_monitoring.py follow one value each into the resources. This is the
cross-cutting scan.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import yaml
from pulumi_crypto import PassphraseCipher

from conftest import FIXTURE, ROOT, STACKS, edit_stack, without_secrets
from figures import count
from rollout.engine import harness
from rollout.cli import main
from rollout.engine.harness import config_for_mocks, run_program
from test_stack_secrets import EXAMPLE_PASSPHRASE

TOPIC = "secret scan"
SECRETS_KEY = "rollout:secrets"
GENERATED_PASSWORD = "generated-password-"


def scan_value(stack: str, name: str) -> str:
    return f"SCAN-{stack}-{name}-d41d8cd9"


def _document(stack: str) -> dict:
    return yaml.safe_load((FIXTURE / "stacks" / f"Pulumi.{stack}.yaml").read_text())


def secret_names(stack: str) -> list[str]:
    return list(_document(stack)["config"][SECRETS_KEY])


def scan_values(stack: str) -> dict[str, str]:
    """The test value of each secret of ``stack``, by name."""
    return {name: scan_value(stack, name) for name in secret_names(stack)}


@dataclass(frozen=True)
class Needle:
    """One form of one secret."""

    stack: str
    secret: str
    form: str
    text: str

    def __str__(self) -> str:
        return f"the {self.form} of {self.stack}'s {self.secret}"


@pytest.fixture(scope="module")
def needles() -> list[Needle]:
    """Every form of every secret of every stack."""
    found = []
    for stack in STACKS:
        document = _document(stack)
        cipher = PassphraseCipher(EXAMPLE_PASSPHRASE, salt_state=document["encryptionsalt"])
        for name, value in document["config"][SECRETS_KEY].items():
            found.append(Needle(stack, name, "ciphertext", value["secure"]))
            found.append(Needle(stack, name, "example plaintext", cipher.decrypt(value["secure"])))
            found.append(Needle(stack, name, "test value", scan_value(stack, name)))
    found.append(Needle("any stack", "generated password", "mock value", GENERATED_PASSWORD))
    return found


# --- the scanner -------------------------------------------------------------------

_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def _readings(text: str) -> Iterable[tuple[str, str]]:
    """The text, then each base64-looking token of it decoded."""
    yield "", text
    for token in _BASE64_TOKEN.findall(text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(token + "=" * (-len(token) % 4)).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                continue
            yield " (base64-encoded)", decoded


def leaks_in(text: str, needles: list[Needle], where: str) -> list[str]:
    """What of ``needles`` appears in ``text``, each as a sentence naming ``where``."""
    found = []
    for how, reading in _readings(text):
        found.extend(f"{needle}{how} in {where}" for needle in needles if needle.text in reading)
    return sorted(set(found))


def scan_resources(run: harness.ProgramRun, needles: list[Needle]) -> list[str]:
    """Every declared resource's inputs outside its secret paths, and the plain outputs."""
    found = []
    for resource in run.resources:
        plain = json.dumps(without_secrets(resource.inputs, resource.secret_paths), sort_keys=True)
        count(TOPIC, "resources scanned")
        count(TOPIC, "bytes of plain resource inputs scanned", len(plain))
        found += leaks_in(plain, needles, f"the plain inputs of {resource.type} {resource.name}")
    outputs = json.dumps({k: v for k, v in run.outputs.items() if k not in run.secret_outputs}, sort_keys=True, default=str)
    count(TOPIC, "bytes of plain stack outputs scanned", len(outputs))
    return found + leaks_in(outputs, needles, "the plain stack outputs")


def scan_folder(folder: Path, needles: list[Needle]) -> list[str]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        count(TOPIC, "rendered files scanned")
        count(TOPIC, "bytes of rendered files scanned", len(text))
        found += leaks_in(text, needles, str(path.relative_to(folder)))
    return found


def scan_records(records: list[logging.LogRecord], needles: list[Needle]) -> list[str]:
    formatter = logging.Formatter()
    found = []
    for record in records:
        parts = [str(record.msg), repr(record.args), record.exc_text or "", record.stack_info or ""]
        try:
            parts.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a record whose arguments do not fit its format
            pass
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        count(TOPIC, "log records scanned")
        found += leaks_in("\n".join(parts), needles, f"a log record of {record.name}")
    return found


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``rollout <argv>`` in this process: its exit code and its stdout and stderr together."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    text = out.getvalue() + err.getvalue()
    count(TOPIC, "bytes of command output scanned", len(text))
    return code, text


def no_leaks(found: list[str]) -> None:
    """Assert nothing was found."""
    count(TOPIC, "leaks found", len(found))
    assert found == []


# --- the scanner finds what is planted ------------------------------------------------

PLANTED = "SCAN-production-smtpPassword-d41d8cd9"


def _resource(inputs: dict, secret_paths: set[str]) -> harness.ProgramRun:
    resource = harness.DeclaredResource("test:index:Thing", "thing", "urn:thing", "", True, inputs, secret_paths)
    return harness.ProgramRun("production", [resource], {})


def _encoded(text: str) -> str:
    return base64.b64encode(f"password: {text}\n".encode()).decode()


SELF_TESTS = [
    pytest.param(lambda n, tmp: scan_resources(_resource({"data": {"pw": PLANTED}}, set()), n),
                 id="a value in an input not marked secret is found"),
    pytest.param(lambda n, tmp: scan_resources(_resource({"data": {"cfg": _encoded(PLANTED)}}, {"data.other"}), n),
                 id="a base64-encoded value in an input not marked secret is found"),
    pytest.param(lambda n, tmp: scan_resources(harness.ProgramRun("production", [], {"url": PLANTED}), n),
                 id="a value in a plain stack output is found"),
    pytest.param(lambda n, tmp: (tmp.joinpath("alertmanager.yml").write_text(f"routing_key: {PLANTED}\n"),
                                 scan_folder(tmp, n))[1],
                 id="a value in a rendered file is found"),
    pytest.param(lambda n, tmp: scan_records([logging.LogRecord("rollout", logging.DEBUG, "x", 1, "key %s", (PLANTED,), None)], n),
                 id="a value in a log record's arguments is found"),
    pytest.param(lambda n, tmp: leaks_in(f"rollout: internal error: {GENERATED_PASSWORD}grafana", n, "stderr"),
                 id="a generated password in a message is found"),
]


@pytest.mark.parametrize("plant", SELF_TESTS)
def test_the_scan_finds_a_planted_secret(needles, tmp_path, plant):
    assert plant(needles, tmp_path), "the scan must report a planted secret"


def test_a_secret_kept_in_a_secret_input_is_not_reported(needles):
    run = _resource({"data": {"pw": PLANTED, "name": "alertmanager"}}, {"data.pw"})
    assert scan_resources(run, needles) == []


# --- (a) resource inputs and outputs ---------------------------------------------------


@pytest.fixture(scope="module")
def runs() -> dict[str, harness.ProgramRun]:
    """The program of each stack, handed the test values as the decrypted secrets."""
    return {stack: run_program(stack, FIXTURE, secret_values=scan_values(stack)) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_reaches_a_resource_input_or_output_not_marked_secret(runs, needles, stack):
    run = runs[stack]
    assert set(scan_values(stack).values()) <= set(run.secret_values), "the program got the test values"
    no_leaks(scan_resources(run, needles))
    # The scan is not empty-handed: each value is deployed, inside a secret input.
    deployed = {
        name
        for name, value in scan_values(stack).items()
        for resource in run.resources
        if value in json.dumps(resource.inputs)
    }
    assert deployed == set(scan_values(stack)), "every secret of the stack reaches some secret input"


# --- (b) rendered files, (c) command output --------------------------------------------


def _placeholders(name: str) -> tuple[str, str]:
    from rollout.model.config import SecretRef

    ref = SecretRef(f"{SECRETS_KEY}.{name}", None)
    return ref.placeholder, ref.placeholder_url


@pytest.mark.parametrize("stack", STACKS)
def test_render_writes_placeholders_and_no_secret(project, tmp_path, needles, stack):
    out = tmp_path / "rendered"
    code, output = run_cli(["--project", str(project), "render", "--stack", stack, "--out", str(out)])
    assert code == 0, output
    no_leaks(scan_folder(out, needles) + leaks_in(output, needles, "the output of rollout render"))
    rendered = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for name in secret_names(stack):
        assert any(placeholder in rendered for placeholder in _placeholders(name)), name


@pytest.fixture
def check_sees_test_values(monkeypatch):
    """``rollout check`` runs the program with the test values as the decrypted secrets,
    as the program under ``pulumi up`` gets the real ones; the runs it made are listed."""
    made: list[harness.ProgramRun] = []
    config_for = harness.config_for_mocks
    run = harness.run_program

    def with_values(stack, root=None, secret_values=None):
        return config_for(stack, root, {**scan_values(stack), **(secret_values or {})})

    def recorded(*args, **kwargs):
        made.append(run(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(harness, "config_for_mocks", with_values)
    monkeypatch.setattr(harness, "run_program", recorded)
    monkeypatch.delenv("ROLLOUT_DEBUG", raising=False)
    return made


@pytest.mark.parametrize("command", ["check", "status", "flags"])
@pytest.mark.parametrize("stack", STACKS)
def test_a_command_prints_no_secret(project, needles, check_sees_test_values, stack, command):
    code, output = run_cli(["--project", str(project), command, "--stack", stack])
    assert code in (0, 1), output
    no_leaks(leaks_in(output, needles, f"the output of rollout {command}"))
    if command == "check":
        (run,) = check_sees_test_values
        assert set(scan_values(stack).values()) <= set(run.secret_values), "check's program got the test values"


# --- (d) log records ----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_logs_no_secret(caplog, needles, stack):
    caplog.set_level(logging.DEBUG)
    run_program(stack, FIXTURE, secret_values=scan_values(stack))
    no_leaks(scan_records(caplog.records, needles))


# --- (e) error messages -------------------------------------------------------------


def _set_secret(name: str, value: Callable[[str], Any]):
    """A change of the stack's config: rollout:secrets.<name> becomes ``value(ciphertext)``."""

    def change(config: dict) -> None:
        secrets = config[SECRETS_KEY]
        secrets[name] = value(secrets[name]["secure"])

    return change


def _rename_secret(name: str, new_name: str, value: Callable[[str], Any] | None = None):
    def change(config: dict) -> None:
        secrets = config[SECRETS_KEY]
        old = secrets.pop(name)
        secrets[new_name] = value(old["secure"]) if value else old

    return change


def _move_secret_to(key: str, field: str, name: str):
    def change(config: dict) -> None:
        # A copy: the same object twice would be dumped as an anchor and an alias.
        config[key]["slack"][field] = dict(config[SECRETS_KEY][name])

    return change


@dataclass(frozen=True)
class TextEdit:
    """An edit of the stack file's text around the line of rollout:secrets.<name>:
    ``edit(text, ciphertext)`` returns the new text."""

    name: str
    edit: Callable[[str, str], str]

    def __call__(self, path: Path) -> None:
        text = path.read_text()
        cipher = yaml.safe_load(text)["config"][SECRETS_KEY][self.name]["secure"]
        edited = self.edit(text, cipher)
        assert edited != text, "the edit must change the file"
        path.write_text(edited)


CLEAR = scan_value("production", "smtpPassword")
BROKEN_STACK_FILES = [
    pytest.param(_set_secret("smtpPassword", lambda c: CLEAR),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secret written in clear text"),
    pytest.param(_set_secret("smtpPassword", lambda c: [CLEAR]),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secret written as a list"),
    pytest.param(_set_secret("smtpPassword", lambda c: {"secure": [c]}),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secure value that is a list"),
    pytest.param(_set_secret("smtpPassword", lambda c: {"secure": {"value": c}}),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secure value that is a mapping"),
    pytest.param(_set_secret("smtpPassword", lambda c: {"secure": 12345}),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secure value that is a number"),
    pytest.param(_set_secret("smtpPassword", lambda c: {"secure": c, "note": CLEAR}),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secure value beside another key"),
    pytest.param(_rename_secret("smtpPassword", "smtpPasswrd"),
                 "rollout:secrets.smtpPasswrd: unknown key", id="a secret under an unknown key"),
    pytest.param(_rename_secret("smtpPassword", "smtpPasswrd", lambda c: CLEAR),
                 "rollout:secrets.smtpPasswrd: unknown key", id="a clear-text value under an unknown key"),
    pytest.param(_move_secret_to("rollout:alerting", "warningsChannel", "smtpPassword"),
                 "rollout:alerting.slack.warningsChannel: is stored as a secret", id="a secret outside rollout:secrets"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"      secure: {c}", f"\t  secure: {c}")),
                 "found character that cannot start any token", id="a tab before a secure value"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f'secure: "{c}')),
                 "found unexpected end of stream", id="an unterminated quote around a ciphertext"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: {c}: {CLEAR}")),
                 "mapping values are not allowed", id="a colon after a ciphertext"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: [{c}, {CLEAR}")),
                 "did not find expected ',' or ']'", id="an unclosed list around a ciphertext"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace("    smtpPassword:\n", f"    smtpPassword: {CLEAR}\n    smtpPassword:\n")),
                 "duplicate key 'smtpPassword'", id="a secret key given twice"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: !!binary {c}x")),
                 "this YAML tag is not allowed", id="a ciphertext tagged as binary"),
    pytest.param(lambda config: config.__setitem__(SECRETS_KEY, CLEAR),
                 "rollout:secrets: a text in clear is not a mapping", id="rollout:secrets set to one clear-text string"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: !!int {CLEAR}")),
                 "this value is not a plain number", id="a clear-text secret tagged !!int"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"!{CLEAR}")),
                 "this YAML tag is not allowed", id="a clear-text secret that starts with !"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: !{CLEAR}")),
                 "this YAML tag is not allowed", id="a clear-text value under secure: that starts with !"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: &x {c}")),
                 "anchors and aliases are not allowed in secrets", id="an anchor on a secret"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: &x {c}").replace(
                     "    rollbackWebhookUrl:\n", "    rollbackWebhookUrl: *x\n    rollbackWebhookUrlOld:\n")),
                 "anchors and aliases are not allowed in secrets", id="an alias to a secret"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", f"secure: {CLEAR}")),
                 "is not ciphertext", id="clear text under secure:"),
    pytest.param(TextEdit("smtpPassword", lambda t, c: t.replace(f"secure: {c}", 'secure: ""')),
                 "is not ciphertext", id="an empty secure:"),
]


def _break(project: Path, stack: str, change) -> None:
    if isinstance(change, TextEdit):
        change(project / "stacks" / f"Pulumi.{stack}.yaml")
    else:
        edit_stack(project, stack, change)


def _errors_hold_no_secret(project: Path, needles: list[Needle], stack: str, expected: str) -> None:
    for command in (["check"], ["status"], ["flags"], ["render", "--out", str(project / "rendered")]):
        code, output = run_cli(["--project", str(project), command[0], "--stack", stack, *command[1:]])
        count(TOPIC, "error messages scanned")
        assert code == 2, output
        assert expected in output, output
        no_leaks(leaks_in(output, needles, f"the error of rollout {command[0]}"))


@pytest.mark.parametrize("change, expected", BROKEN_STACK_FILES)
def test_an_error_about_a_broken_secret_does_not_echo_it(project, needles, monkeypatch, change, expected):
    monkeypatch.delenv("ROLLOUT_DEBUG", raising=False)
    _break(project, "production", change)
    _errors_hold_no_secret(project, needles, "production", expected)


def _program_secrets(change: Callable[[dict], None]):
    def apply(config: dict, secret_keys: list[str]) -> list[str]:
        secrets = json.loads(config[SECRETS_KEY])
        change(secrets)
        config[SECRETS_KEY] = json.dumps(secrets)
        return secret_keys

    return apply


def _not_marked_secret(config: dict, secret_keys: list[str]) -> list[str]:
    return [key for key in secret_keys if key != SECRETS_KEY]


def _clear_string(config: dict, secret_keys: list[str]) -> list[str]:
    config[SECRETS_KEY] = CLEAR
    return _not_marked_secret(config, secret_keys)


BROKEN_PROGRAM_CONFIGS = [
    pytest.param(_not_marked_secret, "rollout:secrets.smtpPassword: must be stored as a secret",
                 id="secrets set without --secret"),
    pytest.param(_program_secrets(lambda s: s.__setitem__("smtpPasswrd", s.pop("smtpPassword"))),
                 "rollout:secrets.smtpPasswrd: unknown key", id="a secret under an unknown key"),
    pytest.param(_program_secrets(lambda s: s.__setitem__("smtpPassword", {"value": s["smtpPassword"]})),
                 "rollout:secrets.smtpPassword: must be stored as a secret", id="a secret nested in a mapping"),
    pytest.param(_clear_string, "rollout:secrets: a text in clear is not a mapping",
                 id="rollout:secrets set to one clear-text string"),
]


@pytest.mark.parametrize("change, expected", BROKEN_PROGRAM_CONFIGS)
def test_the_program_refuses_a_broken_secret_without_echoing_it(caplog, needles, change, expected):
    import pulumi

    caplog.set_level(logging.DEBUG)
    config, secret_keys = config_for_mocks("production", None, scan_values("production"))
    secret_keys = change(config, secret_keys)
    with pytest.raises(pulumi.RunError) as caught:
        run_program("production", FIXTURE, config=config, secret_keys=secret_keys)
    message = str(caught.value)
    count(TOPIC, "error messages scanned")
    assert expected in message, message
    no_leaks(leaks_in(message, needles, "the program's error") + scan_records(caplog.records, needles))
