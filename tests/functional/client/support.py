"""The tenant client driven as a user would: ``strongroom`` subprocesses against a real server.

Accounts are made with the operator CLI (``strongroom tenant create``, ``strongroom
user create``); the client only ever talks to the server over HTTPS. ``CuttingProxy``
drops connections in the middle of a request to prove that uploads resume.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.functional.support import STRONGROOM, RunningServer, assert_ok, cli_env, run_cli

PASSWORD = "violet kettle orbit lantern 42"


def make_user(home: Path, tenant: str, email: str, role: str) -> None:
    result = subprocess.run(
        [str(STRONGROOM), "user", "create", "--home", str(home), "--tenant", tenant,
         "--email", email, "--role", role, "--password-stdin"],
        input=PASSWORD + "\n", env=cli_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert_ok(result)


def make_tenant(home: Path, slug: str) -> None:
    assert_ok(run_cli("tenant", "create", slug, "--home", home))


@dataclass
class Client:
    """The CLI of one user, with its own credentials directory."""

    config_dir: Path
    server: RunningServer

    def run(self, *args: str | Path, stdin: str | None = None, timeout: float = 180
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STRONGROOM), *map(str, args)],
            input=stdin, env=cli_env({"STRONGROOM_CONFIG_DIR": str(self.config_dir)}),
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def login(self, tenant: str, email: str, *, port: int | None = None,
              password: str = PASSWORD, ca: bool = True) -> subprocess.CompletedProcess[str]:
        args: list[str | Path] = [
            "login", "--server", f"https://localhost:{port or self.server.port}",
            "--tenant", tenant, "--email", email, "--password-stdin",
        ]
        if ca:
            args += ["--ca", self.server.ca_file]
        return self.run(*args, stdin=password + "\n")

    @property
    def credentials(self) -> Path:
        return self.config_dir / "credentials.json"


def assert_refused(result: subprocess.CompletedProcess[str], exit_code: int,
                   *fragments: str) -> str:
    """The exit code and, last on stderr, one 'error:' line naming the problem; no traceback.

    Notes before it (a prompt, "created dataset X") are allowed; a second error is not.
    """
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == exit_code, f"exit {result.returncode}: {output}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, f"expected one error line on stderr, got: {result.stderr!r}"
    assert lines[-1].startswith("error: "), lines[-1]
    for fragment in fragments:
        assert fragment in lines[-1], f"{fragment!r} not in {lines[-1]!r}"
    return lines[-1]


class CuttingProxy:
    """A TCP relay to the server that, once armed, cuts every connection open when the bytes
    sent towards the server pass a threshold: TLS stays end to end, only the wire breaks."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.threshold: int | None = None
        self.sent = 0
        self.cuts = 0
        self.open: set[socket.socket] = set()
        self.held = False
        self.stop = threading.Event()

    def hold(self) -> None:
        """Cut every open connection and refuse new ones until :meth:`release`."""
        with self.lock:
            self.held = True
            self._cut()

    def release(self, target_port: int) -> None:
        """Relay new connections again, to ``target_port`` (a restarted server's)."""
        with self.lock:
            self.target_port = target_port
            self.held = False

    def arm(self, after_bytes: int) -> None:
        with self.lock:
            self.sent = 0
            self.threshold = after_bytes

    def _cut(self) -> None:
        self.cuts += 1
        self.threshold = None
        for sock in list(self.open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.open.clear()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if upstream:
                    with self.lock:
                        self.sent += len(data)
                        if self.threshold is not None and self.sent > self.threshold:
                            self._cut()
                            return
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                if self.held:
                    raise ConnectionRefusedError
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                # The server is down (being restarted): the client sees its connection end.
                conn.close()
                continue
            with self.lock:
                self.open.update({conn, upstream})
            for args in ((conn, upstream, True), (upstream, conn, False)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    @contextlib.contextmanager
    def running(self) -> Iterator[CuttingProxy]:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=10)
            self.listener.close()
            with self.lock:
                for sock in self.open:
                    sock.close()
