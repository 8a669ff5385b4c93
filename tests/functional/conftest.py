"""Fixtures for functional tests: initialised homes and running HTTPS servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.support import RunningServer, init_home, serve_subprocess


@pytest.fixture(scope="module")
def dev_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development deployment made by the real ``strongroom init``."""
    return init_home(tmp_path_factory.mktemp("dev") / "home")


@pytest.fixture(scope="module")
def dev_server(dev_home: Path) -> Iterator[RunningServer]:
    """The real ``strongroom serve`` on a kernel-chosen loopback port, shared by a module."""
    with serve_subprocess(dev_home, dev_home.parent / "serve.log") as server:
        yield server
    # Whatever the tests did to it, the server never printed a traceback.
    assert "Traceback" not in server.log_text()
