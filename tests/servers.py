"""Real Prometheus and Alertmanager processes for end-to-end tests, on 127.0.0.1 only.

Every server binds a free port on 127.0.0.1, keeps its data in a temporary
folder, and is stopped when its ``with`` block ends, also on failure::

    with start_prometheus(config_text, rules={"errors.yaml": text}) as prom:
        prom.query("up")
    with start_alertmanager(config_text) as am, WebhookSink() as sink:
        ...
    with MetricsTarget(lambda scrape: "...") as target:
        ...  # target.address goes into a scrape config

The binaries are Debian's ``prometheus`` and ``prometheus-alertmanager``
(scripts/install-tools installs them).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago.

    Tests run in parallel (pytest-xdist), so another test may take it before the
    server binds it: the servers started here try another port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


#: The sockets that hold closed_port()'s ports for the whole test process.
_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens, and nothing will while the tests run.

    It stays bound (without listening, without SO_REUSEADDR) until the process
    ends: a connection to it is refused, and no server of a test running beside
    this one can be given it, as it could a port free_port() only saw free.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    _HELD.append(sock)
    return sock.getsockname()[1]


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed: run scripts/install-tools (make test does)")
    return path


def http_json(url: str, data: bytes | None = None, timeout: float = 5.0, method: str | None = None) -> Any:
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """An HTTP server on a free 127.0.0.1 port, serving from a background thread."""
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _stop(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass


class _Served:
    """A local HTTP server for a ``with`` block: ``_start(handler)`` in ``__enter__``."""

    def _start(self, handler: type[BaseHTTPRequestHandler]) -> str:
        """Serve ``handler``; returns "127.0.0.1:PORT"."""
        self._server, self._thread = _serve(handler)
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        _stop(self._server, self._thread)


@dataclass
class Server:
    """A started server: its base URL, its process and its log."""

    name: str
    url: str
    process: subprocess.Popen
    workdir: Path
    log: Path
    argv: list[str] = field(default_factory=list)
    ready_path: str = "/-/ready"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def restart(self, deadline_s: float = 60) -> None:
        """Stop the process if it still runs (SIGTERM), start the same command again, wait until ready.

        Same port, same workdir, same data: what a supervisor does. To restart
        after a crash, ``process.kill()`` first. The log keeps both runs.
        """
        self.stop()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        _wait_ready(self, self.ready_path, deadline_s)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # Prometheus' HTTP API -----------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query; the result vector (raises on an API error)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        answer = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        if answer.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {answer}")
        return answer["data"]["result"]

    def reload(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/-/reload", method="POST"), timeout=10).read()


def _wait_ready(server: Server, path: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}{path}", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} was not ready within {deadline_s:.0f} s:\n{server.log_text()[-3000:]}")


class PortTaken(RuntimeError):
    """The server exited because its port was bound by someone else in the meantime."""


def _taken(server: Server) -> bool:
    return server.process.poll() is not None and "address already in use" in server.log_text().lower()


@contextmanager
def _running(
    name: str, argv_for: Callable[[int], list[str]], workdir: Path, port: int | None, ready_path: str, deadline_s: float,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """The server ``argv_for(port)`` starts, ready; on a free port unless ``port`` is given.

    A free port can be taken by a test running beside this one before the
    server binds it: then the server is started again on another, up to three times.
    """
    log = workdir / f"{name}.log"
    for attempt in range(3):
        chosen = port or free_port()
        argv = argv_for(chosen)
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
        server = Server(name, f"http://{LOOPBACK}:{chosen}", process, workdir, log, argv, ready_path)
        try:
            _wait_ready(server, ready_path, deadline_s)
            break
        except RuntimeError:
            server.stop()
            if port is None and attempt < 2 and _taken(server):
                continue
            raise
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def start_prometheus(
    config_text: str,
    rules: dict[str, str] | None = None,
    storage_dir: Path | None = None,
    extra_args: tuple[str, ...] = (),
    deadline_s: float = 60,
) -> Iterator[Server]:
    """Prometheus with ``config_text`` as prometheus.yml and ``rules`` written beside it.

    The config's ``rule_files`` should name the rules by their keys (relative
    paths resolve against the config's folder). ``storage_dir`` lets a test
    start on blocks it backfilled with promtool; retention is long enough for
    backfilled samples from the past.
    """
    with tempfile.TemporaryDirectory(prefix="rollout-prometheus-") as scratch:
        workdir = Path(scratch)
        (workdir / "prometheus.yml").write_text(config_text)
        for name, text in (rules or {}).items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(text)
        def argv(port: int) -> list[str]:
            return [
                binary("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={storage_dir or workdir / 'data'}",
                "--storage.tsdb.retention.time=3650d",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--web.enable-lifecycle",
                *extra_args,
            ]

        with _running("prometheus", argv, workdir, None, "/-/ready", deadline_s) as server:
            yield server


@contextmanager
def start_backfilled_prometheus(
    openmetrics_text: str, workdir: Path, config_text: str, rules: dict[str, str] | None = None
) -> Iterator[Server]:
    """Prometheus started on blocks that promtool backfilled from ``openmetrics_text``.

    Prometheus reads backfilled blocks only when it opens its storage, so the
    blocks are made first and the server started on them.
    """
    blocks = workdir / "tsdb"
    backfill(openmetrics_text, workdir, blocks)
    with start_prometheus(config_text, rules=rules, storage_dir=blocks) as prometheus:
        yield prometheus


#: What one promtool run backfills: a day, twelve of the 2-hour blocks it writes (aligned to
#: the epoch, as promtool aligns them).
_PART_S = 24 * 3600


def backfill(openmetrics_text: str, workdir: Path, blocks: Path) -> None:
    """TSDB blocks in ``blocks`` from OpenMetrics text whose samples all carry a timestamp (seconds).

    ``promtool tsdb create-blocks-from openmetrics`` (2.42) reads its whole input once
    per 2-hour block it writes: days of samples in one file cost days² of parsing. The
    text is therefore cut into days, each family's metadata (``# TYPE``, ``# HELP``)
    kept with its samples, and each day backfilled on its own: the same blocks, each
    sample read twelve times rather than once per block of the whole span.
    """
    parts: dict[int, list[str]] = {}
    last_family: dict[int, int] = {}  # each part's family so far (a family's samples are contiguous)
    metadata: list[str] = []
    family, in_metadata = 0, False
    for line in openmetrics_text.splitlines():
        if line.startswith("#"):
            if line.startswith(("# TYPE", "# HELP", "# UNIT")):
                if not in_metadata:  # a new family's metadata begins
                    metadata, family, in_metadata = [], family + 1, True
                metadata.append(line)
            continue
        if not line:
            continue
        in_metadata = False
        index = int(float(line.rsplit(" ", 1)[1])) // _PART_S
        part = parts.setdefault(index, [])
        if last_family.get(index) != family:
            last_family[index] = family
            part.extend(metadata)
        part.append(line)
    source = workdir / "series.om"
    for index in sorted(parts):
        source.write_text("\n".join([*parts[index], "# EOF"]) + "\n")
        created = subprocess.run(
            [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(blocks)],
            capture_output=True, text=True, timeout=300,
        )
        assert created.returncode == 0, created.stderr


@contextmanager
def start_alertmanager(
    config_text: str,
    extra_files: dict[str, str] | None = None,
    deadline_s: float = 60,
    port: int | None = None,
) -> Iterator[Server]:
    """Alertmanager with ``config_text``, its cluster listener off (one peer, no gossip port).

    ``extra_files`` are written beside the config (e.g. the secret files its
    ``*_file`` fields name, as relative paths). ``port`` is a port chosen
    beforehand, for a Prometheus that already sends to it; a free one by default.
    """
    with tempfile.TemporaryDirectory(prefix="rollout-alertmanager-") as scratch:
        workdir = Path(scratch)
        (workdir / "alertmanager.yml").write_text(config_text)
        for name, text in (extra_files or {}).items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(text)
        def argv(port: int) -> list[str]:
            return [
                binary("prometheus-alertmanager"),
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",
            ]

        with _running("alertmanager", argv, workdir, port, "/-/ready", deadline_s) as server:
            yield server


def receivers_to_loopback(document: dict, sink_url: str) -> dict:
    """An Alertmanager config whose every receiver delivers to ``sink_url`` instead.

    Only endpoints change (PagerDuty's url, Slack's api_url, webhooks' url
    at ``{sink_url}/<integration>/<receiver>``; mail to a closed 127.0.0.1 port),
    so routing, grouping and inhibition stay exactly as rendered and nothing
    leaves the host.
    """
    for receiver in document["receivers"]:
        name = receiver["name"]
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty.pop("routing_key_file", None)
            pagerduty.setdefault("routing_key", "loopback")
            pagerduty["url"] = f"{sink_url}/pagerduty"
        for slack in receiver.get("slack_configs", []):
            slack.pop("api_url_file", None)
            slack["api_url"] = f"{sink_url}/slack/{name}"
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{sink_url}/webhook/{name}"
        for email in receiver.get("email_configs", []):
            email["smarthost"] = f"{LOOPBACK}:{closed_port()}"
    return document


class MetricsTarget(_Served):
    r"""A scrape target on 127.0.0.1 serving ``/metrics`` in Prometheus' text format.

    ``exposition(scrape_number)`` returns the page for each scrape (0, 1, 2, ...),
    so a test can make counters grow the way a service's would: a synthetic
    service that fails requests, or one whose metrics are bad::

        def page(scrape):  # 5 failed requests more at every scrape
            return 'http_requests_total{code="500"} %d\n' % (5 * scrape)

        with MetricsTarget(page) as target:
            target.address  # "127.0.0.1:PORT", for a static_config
    """

    def __init__(self, exposition) -> None:
        self.exposition = exposition
        self.scrapes = 0
        self.address = ""

    def __enter__(self) -> "MetricsTarget":
        target = self

        class Handler(_QuietHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/metrics":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = target.exposition(target.scrapes).encode()
                target.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.address = self._start(Handler)
        return self


@dataclass
class WebhookSink(_Served):
    """An HTTP server on 127.0.0.1 that records every POST it receives (JSON bodies)."""

    received: list[dict] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> "WebhookSink":
        sink = self

        class Handler(_QuietHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"raw": body.decode(errors="replace")}
                sink.received.append({"path": self.path, "body": payload})
                self.send_response(200)
                self.end_headers()

        self.url = f"http://{self._start(Handler)}"
        return self

    def wait_for(self, predicate, timeout_s: float = 60) -> dict:
        """The first notification for which ``predicate(body)`` holds, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in list(self.received):
                if predicate(item["body"]):
                    return item
            time.sleep(0.2)
        raise AssertionError(f"no matching notification within {timeout_s:.0f} s; received: {self.received}")


class FlakyServer(_Served):
    """An HTTP API on 127.0.0.1 that fails its first requests in a set way, then answers.

    ``faults`` is consumed one per request, in order; each is an HTTP status to
    answer with (``503``, ``400``), ``"reset"`` (close the connection without an
    answer) or ``("slow", seconds)`` (wait, then answer normally). Once they are
    used up, every request gets ``answer(method, path, body) -> (status, bytes)``::

        with FlakyServer([503, "reset"], lambda *_: (200, b"{}")) as api:
            fetch(api.url + "/api/health")  # third try answers 200
        api.requests  # 3
    """

    def __init__(self, faults, answer) -> None:
        self.faults = list(faults)
        self.answer = answer
        self.requests = 0
        #: The Authorization header of each request (None where absent).
        self.authorizations: list[str | None] = []
        self.url = ""
        self._lock = threading.Lock()

    def __enter__(self) -> "FlakyServer":
        api = self

        class Handler(_QuietHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with api._lock:
                    api.requests += 1
                    api.authorizations.append(self.headers.get("Authorization"))
                    fault = api.faults.pop(0) if api.faults else None
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(fault, tuple) and fault[0] == "slow":
                    time.sleep(fault[1])
                    fault = None
                if isinstance(fault, int):
                    status, text = fault, json.dumps({"status": "error", "errorType": "injected", "error": f"fault {fault}"}).encode()
                else:
                    status, text = api.answer(method, self.path, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: a timeout on its side

            def do_GET(self):  # noqa: N802 - http.server's name
                self._handle("GET")

            def do_POST(self):  # noqa: N802 - http.server's name
                self._handle("POST")

        self.url = f"http://{self._start(Handler)}"
        return self


class RawServer:
    """A TCP server on 127.0.0.1 that answers each HTTP request with bytes the test chooses.

    ``respond(request: bytes, send: Callable[[bytes], None], stopped: threading.Event)``
    gets the request (head and body as read) and writes whatever it likes, framed
    or not: a short body after a Content-Length, a garbled status line, too many
    headers, a trickle (``send`` a byte, ``stopped.wait(0.2)``, again). The
    connection is closed when ``respond`` returns; ``__exit__`` sets ``stopped``
    and closes every socket, so a trickle ends with the test::

        with RawServer(lambda req, send, stopped: send(b"HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\n\\r\\nabc")) as api:
            fetch(api.url)
    """

    def __init__(self, respond) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self.stopped = threading.Event()
        self.url = ""
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "RawServer":
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.url = f"http://{LOOPBACK}:{self._listener.getsockname()[1]}"
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()
        return self

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self._sockets.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            head, _, body = request.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
            with self._lock:
                self.requests.append(head + b"\r\n\r\n" + body)
            self.respond(head + b"\r\n\r\n" + body, conn.sendall, self.stopped)
        except OSError:
            pass  # the client closed the connection (it gave up): that is its right
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for conn in sockets:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)


def raw_answer(status: str = "200 OK", headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    """An HTTP/1.1 answer as bytes; headers as given (Content-Length only when listed)."""
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in (headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ForgeStandIn(_Served):
    """The forge's REST API on 127.0.0.1: records each request (method, path, token, payload, when).

    ``faults`` are answered first, one per request (an HTTP status or
    ``"reset"``); then every request gets ``status`` (204, as the forge answers
    a ``repository_dispatch``). ``answer`` chooses how the answer is sent:
    ``"normal"``; ``"trickle"``: the status line and headers at once, then a body
    of ``Content-Length: 100`` one byte a second; ``"trickle-head"``: the status
    line itself one byte a second; ``"huge"``: a body of 300 MB, sent as fast as
    the client reads it. A trickle ends when the client gives up or the block ends.
    """

    HUGE_BYTES = 300 * 1024 * 1024

    def __init__(self, faults=(), status: int = 204, answer: str = "normal") -> None:
        self.faults = list(faults)
        self.status = status
        self.answer = answer
        #: Every request: {"method", "path", "token", "authorization", "payload", "answered", "at"}.
        self.requests: list[dict] = []
        #: Bytes of answer bodies sent (the huge answer: how much the client took).
        self.body_bytes_sent = 0
        self.url = ""
        self.stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def accepted(self) -> list[dict]:
        """The requests answered 2xx."""
        return [r for r in list(self.requests) if 200 <= r["answered"] < 300]

    def __enter__(self) -> "ForgeStandIn":
        forge = self

        class Handler(_QuietHandler):
            protocol_version = "HTTP/1.1"

            def _trickle(self, data: bytes) -> None:
                for i in range(len(data)):
                    if forge.stopped.is_set():
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    forge.stopped.wait(1.0)

            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"raw": body.decode(errors="replace")}
                authorization = self.headers.get("Authorization") or ""
                with forge._lock:
                    fault = forge.faults.pop(0) if forge.faults else None
                    status = fault if isinstance(fault, int) else forge.status
                    forge.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "token": authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None,
                            "authorization": authorization,
                            "payload": payload,
                            "answered": 0 if fault == "reset" else status,
                            "at": time.monotonic(),
                        }
                    )
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.close_connection = forge.answer != "normal"
                try:
                    if forge.answer == "trickle-head":
                        self._trickle(f"HTTP/1.1 {status} OK\r\nContent-Length: 0\r\n\r\n".encode())
                        return
                    self.send_response(status)
                    if forge.answer == "trickle":
                        self.send_header("Content-Length", "100")
                        self.end_headers()
                        self._trickle(b"x" * 100)
                    elif forge.answer == "huge":
                        self.send_header("Content-Length", str(ForgeStandIn.HUGE_BYTES))
                        self.end_headers()
                        chunk = b"x" * (1024 * 1024)
                        for _ in range(ForgeStandIn.HUGE_BYTES // len(chunk)):
                            if forge.stopped.is_set():
                                return
                            self.wfile.write(chunk)
                            with forge._lock:
                                forge.body_bytes_sent += len(chunk)
                    else:
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                except OSError:
                    pass  # the client gave up on the answer: that is its right

        self.url = f"http://{self._start(Handler)}"
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        super().__exit__(*exc)

    def wait_for(self, count: int, timeout_s: float = 60) -> list[dict]:
        """The accepted requests once there are ``count`` of them, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.accepted) >= count:
                return self.accepted
            time.sleep(0.1)
        raise AssertionError(f"{len(self.accepted)} dispatch(es) accepted within {timeout_s:.0f} s, not {count}: {self.requests}")


@contextmanager
def start_relay(
    stack: str,
    forge_url: str,
    project: Path,
    relay_token: str,
    forge_token: str,
    repository: str = "example/rollout",
    extra_args: tuple[str, ...] = (),
    deadline_s: float = 30,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``rollout relay`` as a process on a free 127.0.0.1 port, stopped at the end of the block."""
    import os
    import sys

    with tempfile.TemporaryDirectory(prefix="rollout-relay-") as scratch:
        workdir = Path(scratch)
        def argv(port: int) -> list[str]:
            return [
                str(Path(sys.executable).with_name("rollout")),
                "--project", str(project),
                "relay", "--stack", stack, "--listen", f"{LOOPBACK}:{port}",
                "--forge-url", forge_url, "--repository", repository, *extra_args,
            ]

        env = {**os.environ, "ROLLOUT_RELAY_TOKEN": relay_token, "GITHUB_TOKEN": forge_token, **(extra_env or {})}
        with _running("relay", argv, workdir, None, "/healthz", deadline_s, env=env) as server:
            yield server


class KubeApiStandIn:
    """A Kubernetes API server for the relay's fast path, over TLS on 127.0.0.1, misbehaving on purpose.

    ``mode``: ``"trickle"`` answers the GET of a route with its status line and
    headers at once, then its body one byte a second; ``"silent"`` accepts each
    connection and never answers; ``"ok"`` answers the route and accepts the patch.
    ``service_account(folder)`` writes the token, CA and namespace that
    ``RouteUpdater.in_cluster`` reads; ``env()`` gives the variables pointing at it.
    """

    def __init__(self, mode: str, folder: Path, service: str = "genesis", namespace: str = "rollout-staging") -> None:
        import ssl

        self.mode, self.folder, self.service, self.namespace = mode, folder, service, namespace
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            cwd=folder, check=True, capture_output=True,
        )
        (folder / "token").write_text("kube-sa-token-not-a-secret\n")
        (folder / "namespace").write_text(namespace)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(folder / "ca.crt", folder / "tls.key")
        self.requests: list[str] = []
        self.stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.port = 0

    def env(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": LOOPBACK, "KUBERNETES_SERVICE_PORT": str(self.port),
                "ROLLOUT_SERVICE_ACCOUNT_DIR": str(self.folder)}

    def route(self) -> bytes:
        backends = [{"name": f"{self.service}-stable", "kind": "Service", "port": 80, "weight": 90},
                    {"name": f"{self.service}-canary", "kind": "Service", "port": 80, "weight": 10}]
        return json.dumps({"kind": "HTTPRoute", "metadata": {"name": self.service, "resourceVersion": "7"},
                           "spec": {"rules": [{"backendRefs": backends}]}}).encode()

    def __enter__(self) -> "KubeApiStandIn":
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()
        return self

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self._sockets.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(5)
            conn = self._context.wrap_socket(raw, server_side=True)
            with self._lock:
                self._sockets.append(conn)
            while not self.stopped.is_set():
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                line = head.split(b"\r\n", 1)[0].decode(errors="replace")
                with self._lock:
                    self.requests.append(line)
                if self.mode == "silent":
                    self.stopped.wait(120)
                    return
                length = next((int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0)
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < length:
                    body += conn.recv(65536)
                answer = self.route() if line.startswith("GET") else b"{}"
                conn.sendall(raw_answer("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]))
                if self.mode == "trickle" and line.startswith("GET"):
                    for i in range(len(answer)):
                        if self.stopped.wait(1.0):
                            return
                        conn.sendall(answer[i:i + 1])
                else:
                    conn.sendall(answer)
        except OSError:
            pass  # the client gave up, or the block ended
        finally:
            try:
                raw.close()
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for conn in sockets:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)
