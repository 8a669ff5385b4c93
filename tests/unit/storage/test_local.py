"""The local object store: crash-safe publication, digests checked, references validated."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import BinaryIO

import pytest

from strongroom.errors import InvalidInput
from strongroom.storage.errors import ObjectCorrupted, ObjectMissing
from strongroom.storage.interfaces import BlobRef
from strongroom.storage.local import LocalObjectStore

DIGEST = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def put_bytes(store: LocalObjectStore, data: bytes, prefix: str = "acme") -> BlobRef:
    def write(sink: BinaryIO) -> None:
        for i in range(0, len(data), 100_000):
            sink.write(data[i : i + 100_000])

    return store.put(prefix, write)


def stored_path(store: LocalObjectStore, ref: BlobRef) -> Path:
    return store.root / "tenants" / ref.prefix / ref.digest[:2] / ref.digest


def visible_objects(store: LocalObjectStore) -> list[Path]:
    tenants = store.root / "tenants"
    return sorted(p for p in tenants.rglob("*") if p.is_file()) if tenants.exists() else []


def incoming(store: LocalObjectStore) -> list[Path]:
    return sorted((store.root / ".incoming").iterdir())


def test_put_publishes_an_immutable_content_addressed_object(store: LocalObjectStore) -> None:
    data = os.urandom(300_000)
    ref = put_bytes(store, data)
    assert ref == BlobRef("acme", hashlib.sha256(data).hexdigest(), len(data))
    path = stored_path(store, ref)
    assert visible_objects(store) == [path]
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert incoming(store) == []
    assert b"".join(store.read(ref, chunk_size=4096)) == data
    store.verify(ref)


def test_empty_object(store: LocalObjectStore) -> None:
    ref = store.put("acme", lambda _sink: None)
    assert ref.size == 0
    assert b"".join(store.read(ref)) == b""


def test_failed_write_leaves_nothing(store: LocalObjectStore) -> None:
    def write(sink: BinaryIO) -> None:
        sink.write(b"half of it")
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        store.put("acme", write)
    assert visible_objects(store) == []
    assert incoming(store) == []


_CRASHING_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from strongroom.storage.local import LocalObjectStore

    def write(sink):
        for _ in range(32):
            sink.write(b"x" * (1 << 20))
        sink.flush()
        print("half-written", flush=True)
        time.sleep(300)
        sink.write(b"the rest")

    LocalObjectStore(Path(sys.argv[1])).put("acme", write)
    print("published", flush=True)
    """
)


def test_kill_during_write_leaves_nothing_visible(store: LocalObjectStore) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WRITER, str(store.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stderr is not None
            line = writer.stdout.readline()
            assert line == b"half-written\n", writer.stderr.read()
            [temp] = incoming(store)
            assert temp.stat().st_size == 32 << 20
            assert visible_objects(store) == []
            # Another process of the deployment starting now must not break the live write.
            assert store.clear_incoming() == 0
            assert incoming(store) == [temp]
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert visible_objects(store) == []
    # The writer is dead, its lock gone: the leftover is cleared at the next start.
    assert store.clear_incoming() == 1
    assert incoming(store) == []
    ref = put_bytes(store, b"after the crash")
    assert visible_objects(store) == [stored_path(store, ref)]


# -- corruption -----------------------------------------------------------------------------


def tamper(path: Path, how: str) -> None:
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    elif how == "truncate":
        del data[-1]
    elif how == "append":
        data += b"\x00"
    elif how == "empty":
        data.clear()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate", "append", "empty"])
def test_corrupted_object_is_refused(store: LocalObjectStore, how: str) -> None:
    ref = put_bytes(store, os.urandom(250_000))
    tamper(stored_path(store, ref), how)
    with pytest.raises(ObjectCorrupted, match="does not match its recorded digest"):
        store.verify(ref)
    with pytest.raises(ObjectCorrupted):
        b"".join(store.read(ref))


@pytest.mark.parametrize("how", ["flip", "truncate", "append"])
def test_corruption_is_caught_by_readinto_as_well(store: LocalObjectStore, how: str) -> None:
    ref = put_bytes(store, os.urandom(250_000))
    tamper(stored_path(store, ref), how)
    buffer = bytearray(64 * 1024)
    with store.open(ref) as reader, pytest.raises(ObjectCorrupted):  # noqa: PT012
        while reader.readinto(buffer):
            pass


def test_readinto_reads_what_was_stored(store: LocalObjectStore) -> None:
    data = os.urandom(250_000)
    ref = put_bytes(store, data)
    buffer = bytearray(64 * 1024)
    out = bytearray()
    with store.open(ref) as reader:
        while count := reader.readinto(buffer):
            out += buffer[:count]
    assert out == data


def test_missing_object_is_reported(store: LocalObjectStore) -> None:
    with pytest.raises(ObjectMissing):
        store.verify(BlobRef("acme", DIGEST, 10))


def test_delete_removes_the_object(store: LocalObjectStore) -> None:
    ref = put_bytes(store, b"to be purged")
    store.delete(ref)
    assert visible_objects(store) == []
    store.delete(ref)  # already gone: nothing to do


# -- references -----------------------------------------------------------------------------

BAD_PREFIXES = [
    "", "../acme", "..", "a/b", "acme/../../etc", "/abs", "Acme", ".incoming", "-acme", "_acme",
    "x" * 65, "acme\n", "acme\x00", "acme ", "\u0430cme",  # Cyrillic a
]
BAD_DIGESTS = [
    "", "../" + DIGEST[3:], DIGEST.upper(), DIGEST[:-1], DIGEST + "0", DIGEST + "\n",
    "g" * 64, DIGEST[:32] + "/" + DIGEST[33:], "..",
]


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_bad_prefix_is_refused(store: LocalObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        store.put(prefix, lambda sink: sink.write(b"x"))
    for call in (store.verify, store.delete, store.open):
        with pytest.raises(InvalidInput, match="malformed"):
            call(BlobRef(prefix, DIGEST, 1))
    assert incoming(store) == []
    assert not (store.root / "tenants").exists()


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_bad_digest_is_refused(store: LocalObjectStore, digest: str) -> None:
    for call in (store.verify, store.delete, store.open):
        with pytest.raises(InvalidInput, match="malformed"):
            call(BlobRef("acme", digest, 1))


def test_delete_with_path_tricks_touches_nothing(store: LocalObjectStore, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    ref = put_bytes(store, b"object")
    with pytest.raises(InvalidInput):
        store.delete(BlobRef("../..", "victim", 7))
    with pytest.raises(InvalidInput):
        store.delete(BlobRef(ref.prefix, "../../../victim", 7))
    assert victim.read_bytes() == b"keep me"
    store.verify(ref)


@pytest.mark.parametrize("how", ["flip", "truncate", "append", "empty"])
def test_a_verified_path_is_checked_again_after_any_change_to_the_file(
    store: LocalObjectStore, how: str
) -> None:
    """verified_path hashes an object once per process, but any write to the file since
    (even one that keeps its size and mtime) brings the full check back."""
    ref = put_bytes(store, os.urandom(250_000))
    path = store.verified_path(ref)
    assert store.verified_path(ref) == path
    before = path.stat()
    tamper(path, how)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the mtime change
    with pytest.raises(ObjectCorrupted):
        store.verified_path(ref)


def test_a_deleted_object_is_not_verified_from_memory(store: LocalObjectStore) -> None:
    ref = put_bytes(store, b"gone soon")
    store.verified_path(ref)
    store.delete(ref)
    with pytest.raises(ObjectMissing):
        store.verified_path(ref)
