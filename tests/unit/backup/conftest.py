"""Fixtures for backup tests: a deployment with a repository beside (not inside) its home."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.storage.models import StoredObject
from strongroom.storage.services import put_object
from strongroom.tenancy.services import create_tenant

CANARY_DB = "CANARYDB7f3a91"


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def backup_settings(make_home: Callable[..., Settings], db_url: str, repo_dir: Path) -> Settings:
    return make_home(database_url=db_url, backup_repository=str(repo_dir))


@pytest.fixture
def dep(backup_settings: Settings) -> Iterator[Deployment]:
    opened = open_deployment(backup_settings)
    yield opened
    opened.close()


def canary(tag: str = "") -> bytes:
    return f"CANARY-{tag}-{uuid.uuid4().hex}".encode()


def add_objects(
    dep: Deployment, slug: str, payloads: list[bytes], *, create: bool = True
) -> list[StoredObject]:
    """Encrypted objects for tenant ``slug`` (made if needed, named with a DB canary)."""
    from strongroom.tenancy.services import get_tenant

    with dep.transaction() as session:
        if create:
            tenant = create_tenant(session, dep.keys, slug, f"{CANARY_DB} {slug}")
        else:
            tenant = get_tenant(session, slug)
        ring = dep.keys.tenant_ring(session, tenant.id)
        return [put_object(session, dep.store, ring, tenant, [p], kind="upload") for p in payloads]


def make_writable(path: Path) -> None:
    """Undo the repository's read-only modes so a test can tamper (as an attacker would)."""
    for directory, _dirs, files in os.walk(path):
        Path(directory).chmod(0o700)
        for name in files:
            (Path(directory) / name).chmod(0o600)


def flip_byte(path: Path, offset: int | None = None) -> None:
    make_writable(path.parent)
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0x01
    path.write_bytes(bytes(data))


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A small real filesystem (root only): to fill a disk or make one read-only."""
    path.mkdir(exist_ok=True)
    options = f"size={size},mode=0700"
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                            capture_output=True, check=False)
    if result.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
