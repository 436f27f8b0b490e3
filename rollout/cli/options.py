"""The command line's argument types: each refuses a bad value with one line (exit 2).

Shared by the parser (:mod:`rollout.cli.app`) and ``python -m rollout.cli.comment``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import urllib.parse
from pathlib import Path

from rollout.cli.output import EXIT_BAD_INPUT, say
from rollout.load.stack import project_root, shown_stack_file
from rollout.model.config import STACK_NAME
from rollout.model.images import ImageRefError
from rollout.model.images import parse as parse_image
from rollout.ops.http import Retry


def find_project(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding Pulumi.yaml; else the package's own."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "stacks").is_dir():
            return folder
    return project_root()


class Parser(argparse.ArgumentParser):
    """argparse, with a refused command line as one line on stderr (exit 2), not usage plus the error."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        say(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def stack_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--stack/-s NAME``: the stack whose file the command reads."""
    parser.add_argument(
        "--stack", "-s", required=required, default=None, type=stack_name,
        help=f"stack name: {shown_stack_file('<stack>')}",
    )


def service_args(parser: argparse.ArgumentParser, every: str, group: str | None = None) -> None:
    """``--service`` (one service; the default, the stack's only one) and ``--all-services``
    (``every``: what the command does to each), with ``--group`` (a release group) when given."""
    parser.add_argument("--service", default=None, help="the service (default: the stack's only service)")
    parser.add_argument("--all-services", action="store_true", help=every)
    if group is not None:
        parser.add_argument("--group", default=None, help=group)


def stack_name(text: str) -> str:
    # Pulumi's rule (rollout.model.config.STACK_NAME). The name is also part of a file
    # name under stacks/, so it keeps out separators ("../x"), control characters
    # and names longer than a file name may be.
    if not STACK_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text[:100]!r} is not a stack name: 1 to 100 letters, digits, '-', '_' or '.'"
        )
    return text


def project_folder(text: str) -> Path:
    try:
        is_folder = bool(text) and "\x00" not in text and Path(text).is_dir()
    except OSError:  # a name too long for the file system
        is_folder = False
    if not is_folder:
        raise argparse.ArgumentTypeError(f"{text[:200]!r} is not a folder")
    return Path(text)


def given(text: str) -> str:
    """A path or a git ref. Empty is refused rather than read as "not given": an
    unset variable in `--out "$DIR"` must not silently mean the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("is empty")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text[:200]!r} holds a NUL byte")
    return text


def base_url(text: str) -> str:
    """An http(s) URL with a host. The value is not repeated in the message: a URL
    may carry credentials."""
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port  # a port that is not a number, or out of range, raises here
    except ValueError:
        parts = None
    printable = all(32 < ord(c) != 127 for c in text)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not printable:
        raise argparse.ArgumentTypeError("not an http(s) URL with a host, e.g. http://127.0.0.1:9090")
    return text


def wait_seconds(text: str) -> float:
    """--wait: 0 is allowed (no wait); NaN or infinity would wait forever."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 <= value < 86400):
        raise argparse.ArgumentTypeError(f"{text[:100]!r}: seconds must be 0 or more and less than a day")
    return value


def seconds(text: str) -> float:
    """--deadline, --timeout: more than 0 (a call needs some time), less than a day."""
    value = wait_seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text[:100]!r}: seconds must be more than 0")
    return value


def utf8(text: str) -> str:
    """Text that is valid UTF-8. A byte that is not (a shell's $'\\xff') reaches Python
    as a lone surrogate: flagd's hash (mmh3) crashes the process on one, and no
    stack file can record one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not valid UTF-8") from None
    return text


def image(text: str) -> str:
    """--image: one container image reference in the distribution grammar (rollout.model.images)."""
    utf8(text)
    try:
        parse_image(text)
    except ImageRefError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def release_image(text: str) -> str:
    """``release --image``: an image reference, or with ``--group`` SERVICE=IMAGE (the service a DNS label)."""
    service, sep, reference = text.partition("=")
    if sep and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", service):
        return f"{service}={image(reference)}"
    return image(text)


def listen(text: str) -> tuple[str, int]:
    """--listen HOST:PORT (an IPv6 host in brackets)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def repository(text: str) -> str:
    """--repository OWNER/NAME, as the forge spells them."""
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}", text):
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not OWNER/NAME, e.g. example/rollout")
    return text


def http_args(parser: argparse.ArgumentParser) -> None:
    """``--deadline`` and ``--timeout`` of a command that calls HTTP servers (rollout.ops.http)."""
    parser.add_argument(
        "--deadline", type=seconds, default=Retry.deadline_s,
        help=f"seconds each HTTP call may take, retries included (default {Retry.deadline_s:g}); "
        "connection failures, timeouts and 5xx answers are retried with backoff until then",
    )
    parser.add_argument(
        "--timeout", type=seconds, default=Retry.timeout_s,
        help=f"seconds one try waits for an answer (default {Retry.timeout_s:g})",
    )


def retry(args: argparse.Namespace) -> Retry:
    """The HTTP retry settings of --deadline and --timeout (rollout.ops.http)."""
    return Retry(deadline_s=args.deadline, timeout_s=min(args.timeout, args.deadline))
