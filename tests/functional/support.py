"""Helpers for functional tests: the real CLI in subprocesses, real TLS on loopback.

Nothing here fakes our own code. Servers are the real ``strongroom serve`` (a
subprocess) or uvicorn built by ``strongroom.web.server.build_server`` in a thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI

from strongroom.deployment import Deployment
from strongroom.web.server import bind, build_server

STRONGROOM = Path(sys.executable).with_name("strongroom")
# A guard against hanging forever, not a performance expectation.
START_DEADLINE_SECONDS = 60.0
_URL_LINE = re.compile(r"^Strongroom \(\w+\) at https://(?P<host>[^/]+):(?P<port>\d+)/")
_OPERATOR_LINE = re.compile(r"^operator API at https://(?P<host>[^/]+):(?P<port>\d+)/")


# -- the CLI ------------------------------------------------------------------------------------


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any STRONGROOM_* variable, plus ``extra``.

    The test runner may itself carry STRONGROOM_TEST_PG_URL, which the CLI would
    rightly refuse as an unknown setting.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``strongroom ARGS`` from the virtualenv and capture its output."""
    return subprocess.run(
        [str(STRONGROOM), *map(str, args)],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2, one line on stderr starting with 'error:', naming the problem; no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, f"exit {result.returncode}: {output}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def init_home(home: Path, *extra: str, env: Mapping[str, str] | None = None) -> Path:
    """``strongroom init`` a home (development unless ``extra`` says otherwise)."""
    args = list(extra)
    if "--environment" not in args:
        args += ["--environment", "development"]
    assert_ok(run_cli("init", "--home", home, *args, env=env))
    return home


def listing(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its mode, to prove a failed command changed nothing."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.stat().st_mode for p in sorted(root.rglob("*"))}


# -- servers ------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    home: Path
    port: int
    operator_port: int | None = None
    process: subprocess.Popen[str] | None = None
    log_file: Path | None = None
    records: list[str] = field(default_factory=list)
    # Set when the server was told to serve an operator's certificate instead of init's.
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def ca_file(self) -> Path:
        return self.home / "tls" / "ca.pem"

    def listeners(self) -> list[int]:
        """Every port this server listens on (tenant plane, and operator plane if any)."""
        return [self.port] + ([self.operator_port] if self.operator_port is not None else [])

    def served_certificate(self) -> tuple[Path, Path]:
        """The certificate chain and key this server presents (for a witness to present too)."""
        return (
            self.cert_file or self.home / "tls" / "server.pem",
            self.key_file or self.home / "tls" / "server.key",
        )

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=verifying_context(self.ca_file), timeout=30, **kwargs)

    def log_text(self) -> str:
        if self.log_file is not None:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(self.records)


def _read_ports(process: subprocess.Popen[str], log_file: Path) -> tuple[int, int]:
    """The tenant and operator ports ``strongroom serve`` announces on stdout."""
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    def pump() -> None:
        for line in stdout:
            lines.put(line)

    # A reader thread, because select() on a buffered pipe misses lines already buffered.
    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    seen = ""
    ports: dict[str, int] = {}
    while len(ports) < 2 and time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen += line
        for plane, pattern in (("tenant", _URL_LINE), ("operator", _OPERATOR_LINE)):
            match = pattern.search(line)
            if match:
                ports[plane] = int(match["port"])
    if len(ports) == 2:
        return ports["tenant"], ports["operator"]
    process.kill()
    process.wait()
    raise AssertionError(
        f"strongroom serve did not announce its URLs; stdout={seen!r} "
        f"stderr={log_file.read_text(errors='replace')!r}"
    )


@contextlib.contextmanager
def serve_subprocess(
    home: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    port: int = 0,
) -> Iterator[RunningServer]:
    """The real ``strongroom serve`` in a subprocess; port 0 lets the kernel pick free ones."""
    command = [str(STRONGROOM), "serve", "--home", str(home), "--port", str(port)]
    command += ["--operator-port", "0"]
    with log_file.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        bound, operator = _read_ports(process, log_file)
        # The sockets are listening before the URLs are printed: no need to wait further.
        yield RunningServer(
            home=home, port=bound, operator_port=operator, process=process, log_file=log_file
        )
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stdout is not None
        process.stdout.close()


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


@contextlib.contextmanager
def serve_in_thread(
    deployment: Deployment, customise: Callable[[FastAPI], None] | None = None
) -> Iterator[RunningServer]:
    """uvicorn as built by ``build_server`` (same TLS and app), in a thread, on a free port.

    ``customise`` may add test-only routes to the app before it serves. Log
    records of the ``strongroom`` and ``uvicorn`` loggers are collected, with
    tracebacks, in ``RunningServer.records``.
    """
    sock = bind("127.0.0.1", 0)
    server = build_server(deployment, sock)
    app = server.config.app
    assert isinstance(app, FastAPI)
    if customise is not None:
        customise(app)
    records: list[str] = []
    handler = _Collect(records)
    loggers = [logging.getLogger("strongroom"), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, f"uvicorn did not start: {records}"
        yield RunningServer(
            home=deployment.settings.home, port=sock.getsockname()[1], records=records
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        for logger in loggers:
            logger.removeHandler(handler)


# -- TLS ----------------------------------------------------------------------------------------


def verifying_context(ca_file: Path) -> ssl.SSLContext:
    """A strict client: trusts only ``ca_file``, checks the host name."""
    return ssl.create_default_context(cafile=str(ca_file))


def loose_context(
    version: ssl.TLSVersion | None = None, ciphers: str = "ALL:@SECLEVEL=0"
) -> ssl.SSLContext:
    """A client willing to speak ``version`` with ``ciphers``, whatever the system policy says.

    ``@SECLEVEL=0`` lets OpenSSL 3 offer TLS 1.0/1.1 and weak suites at all; the
    witness server proves it really does before we count a refusal.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(ciphers)
    if version is not None:
        with warnings.catch_warnings():
            # Python deprecates naming TLS 1.0/1.1; speaking them is the point of the test.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
    return context


def handshake(
    port: int, context: ssl.SSLContext, server_hostname: str | None = None
) -> tuple[str, str]:
    """TLS handshake with 127.0.0.1:port; returns (protocol version, cipher name)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        version, cipher = tls.version(), tls.cipher()
        assert version is not None
        assert cipher is not None
        return version, cipher[0]


def handshake_refused(port: int, context: ssl.SSLContext) -> bool:
    """True when the server refuses the handshake (an error, not a timeout)."""
    try:
        handshake(port, context)
    except TimeoutError:
        raise AssertionError("the server neither completed nor refused the handshake") from None
    except (ssl.SSLError, ConnectionError):
        return True
    return False


@contextlib.contextmanager
def permissive_tls_server(cert_file: Path, key_file: Path) -> Iterator[int]:
    """A witness: a TLS server that accepts anything OpenSSL can speak, TLS 1.0 upward.

    When it completes a handshake that Strongroom refuses, the refusal is
    Strongroom's policy, not the client's inability.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(15)
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # wait for the client to finish and close
            conn.close()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=15)
        listener.close()


def openssl_binary() -> str | None:
    return shutil.which("openssl")


def openssl_handshake(port: int, *options: str) -> str | None:
    """``openssl s_client`` as a second, independent client; the negotiated cipher or None."""
    binary = openssl_binary()
    assert binary is not None
    result = subprocess.run(
        [binary, "s_client", "-connect", f"127.0.0.1:{port}", *options],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Cipher is (\S+)", result.stdout)
    if match is None or match[1] == "(NONE)":
        return None
    return match[1]


# -- HTTP answers -------------------------------------------------------------------------------

MIN_HSTS_SECONDS = 31_536_000  # one year, as HSTS preload lists and Mozilla ask


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    hsts = headers.get("strict-transport-security", "")
    match = re.search(r"max-age=(\d+)", hsts)
    assert match is not None, f"no HSTS on {response.status_code}: {dict(headers)}"
    assert int(match[1]) >= MIN_HSTS_SECONDS
    assert "includesubdomains" in hsts.lower()
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("referrer-policy") == "no-referrer"
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "")
    assert "no-store" in headers.get("cache-control", "")
    assert "server" not in headers, "the server should not announce itself"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem: type (URI), title, status (= HTTP status), detail; no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("type"), str)
    assert urlparse(body["type"]).scheme in {"https", "about"}, body["type"]
    assert isinstance(body.get("title"), str)
    assert body["title"]
    assert body.get("status") == status
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    assert "Traceback" not in response.text
    return body
