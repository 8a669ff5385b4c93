"""A client that meets the server's rate limit waits as the 429 says, and finishes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.functional.client.conftest import ANALYST, TENANT
from tests.functional.client.support import Client, make_tenant, make_user
from tests.functional.client.test_datasets import customers_csv
from tests.functional.support import assert_ok, init_home, serve_subprocess

# Few requests a second per address: an upload in 1 MiB chunks is sure to meet it.
STRICT = {"STRONGROOM_RATE_LIMIT_LOGIN": "10000/minute",
          "STRONGROOM_RATE_LIMIT_DEFAULT": "4/second"}


def test_an_upload_waits_out_429s_and_every_row_arrives_once(tmp_path: Path) -> None:
    home = init_home(tmp_path / "home")
    make_tenant(home, TENANT)
    make_user(home, TENANT, ANALYST, "analyst")
    source = customers_csv(tmp_path / "big.csv", 120_000)
    size = source.stat().st_size
    assert size > 4 * 1024 * 1024
    with serve_subprocess(home, tmp_path / "serve.log", env=STRICT) as server:
        client = Client(tmp_path / "config", server)
        assert_ok(client.login(TENANT, ANALYST))
        result = client.run("dataset", "upload", source, "--dataset", "limited",
                            "--chunk-mib", "1", "--build", "--json")
        out = json.loads(assert_ok(result))
        assert out["upload"]["received_bytes"] == size
        assert out["version"]["status"] == "ready"
        assert out["version"]["row_count"] == 120_000
        total = json.loads(assert_ok(client.run(
            "sql", "SELECT sum(customer_id) AS s, count(*) AS n FROM ds_limited", "--json")))
    assert total["rows"] == [[120_000 * 120_001 // 2, 120_000]]
    # The limit was met (the server answered 429) and the client rode it out.
    assert "rate-limited" in result.stderr, result.stderr
    assert "connection failed" not in result.stderr
