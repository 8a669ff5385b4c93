"""An upload survives a server restart: the client waits, asks what the new server process
holds, and carries on; every row arrives exactly once."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

from tests.functional.client.conftest import ANALYST, GENEROUS, TENANT
from tests.functional.client.support import Client, CuttingProxy, make_tenant, make_user
from tests.functional.client.test_datasets import customers_csv
from tests.functional.support import (
    START_DEADLINE_SECONDS,
    STRONGROOM,
    assert_ok,
    cli_env,
    init_home,
    serve_subprocess,
)

ROWS = 120_000


def test_upload_resumes_across_a_server_restart(db_url: str, tmp_path: Path) -> None:
    home = init_home(tmp_path / "home", *(["--database-url", db_url] if db_url else []))
    make_tenant(home, TENANT)
    make_user(home, TENANT, ANALYST, "analyst")
    source = customers_csv(tmp_path / "big.csv", ROWS)
    size = source.stat().st_size
    with contextlib.ExitStack() as first_life:
        first = first_life.enter_context(serve_subprocess(home, tmp_path / "one.log",
                                                          env=GENEROUS))
        proxy = CuttingProxy(first.port)
        with proxy.running(), contextlib.ExitStack() as second_life:
            client = Client(tmp_path / "config", first)
            assert_ok(client.login(TENANT, ANALYST, port=proxy.port))
            upload = subprocess.Popen(
                [str(STRONGROOM), "dataset", "upload", str(source), "--dataset", "restarted",
                 "--chunk-mib", "1", "--build", "--json"],
                env=cli_env({"STRONGROOM_CONFIG_DIR": str(client.config_dir)}),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            # Restart once a good part of the file (not all of it) has gone through.
            deadline = time.monotonic() + START_DEADLINE_SECONDS * 3
            while proxy.sent < size // 3 and upload.poll() is None:
                assert time.monotonic() < deadline, "the upload made no progress"
                time.sleep(0.05)
            assert upload.poll() is None, "the upload ended before the restart"
            # Nothing reaches the server from here until it has restarted: the client is
            # certainly cut off mid-upload, not left to finish during a graceful shutdown.
            proxy.hold()
            first_life.close()
            second = second_life.enter_context(serve_subprocess(home, tmp_path / "two.log",
                                                                env=GENEROUS))
            proxy.release(second.port)
            stdout, stderr = upload.communicate(timeout=600)
            assert upload.returncode == 0, stderr
            assert "Traceback" not in stderr
            assert "resumed" in stderr
            out = json.loads(stdout)
            assert out["upload"]["received_bytes"] == size
            assert out["version"]["status"] == "ready"
            assert out["version"]["row_count"] == ROWS
            total = json.loads(assert_ok(client.run(
                "sql", "SELECT sum(customer_id) AS s, count(*) AS n FROM ds_restarted",
                "--json")))
            assert total["rows"] == [[ROWS * (ROWS + 1) // 2, ROWS]]
