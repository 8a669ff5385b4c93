"""Where backups live: an interface, and the local-directory implementation.

Layout of a local repository::

    ROOT/strongroom-repository.json   format and the public key of the owning deployment
    ROOT/backups/ID/manifest.json     signed manifest (written last)
    ROOT/backups/ID/*.sr              encrypted database dump and home files
    ROOT/objects/PREFIX/ab/DIGEST     copies of the object store's ciphertexts
    ROOT/holds/ID                     a hold: the backup is never pruned while it exists
    ROOT/incoming/                    backups being written, and backups being pruned
    ROOT/lock                         one writer (run, prune, hold) at a time

A backup is written under ``incoming/ID.partial/``, every file fsynced, then
the directory is renamed to ``backups/ID`` and ``backups/`` fsynced: a crash at
any point leaves no visible partial backup, only leftovers in ``incoming/``
that the next writer removes. Published files are made read-only (0400, and
0500 for backup directories). An S3 implementation keeps the same shape: the
manifest object is written last and is what makes a backup visible.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from strongroom.backup.errors import BackupFailed, BackupNotFound, RepositoryUnusable
from strongroom.errors import InvalidInput
from strongroom.storage.durable import HashingWriter, fsync_dir

FORMAT = "strongroom-backup-repository/1"
MARKER = "strongroom-repository.json"
MANIFEST = "manifest.json"
BACKUP_ID = re.compile(r"\d{8}T\d{6}\.\d{3}Z-(daily|weekly)-[0-9a-f]{6}")
_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20


def check_backup_id(backup_id: str) -> str:
    if not BACKUP_ID.fullmatch(backup_id):
        raise BackupNotFound(
            "no such backup: ids look like 20261126T020000.000Z-daily-1a2b3c",
            hint="list them with `strongroom backup list`",
        )
    return backup_id


def _full_disk(exc: OSError) -> BackupFailed:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackupFailed(
            "the backup repository is full (no space left on device); nothing was published "
            "and earlier backups are untouched",
            hint="free space or move backup_repository to a larger disk, then run again",
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return BackupFailed(
            "the backup repository cannot be written (read-only or permission denied); "
            "earlier backups are untouched",
            hint="mount it read-write for this user",
        )
    return BackupFailed(f"writing the backup failed: {exc.strerror or exc.__class__.__name__}")


class PendingBackup(Protocol):
    def write_file(self, name: str, write: Callable[[BinaryIO], None]) -> tuple[str, int]:
        """Write one file of the backup; returns its SHA-256 (hex) and size."""

    def publish(self, manifest: bytes) -> None:
        """Write the manifest and make the backup visible, all at once."""

    def abort(self) -> None:
        """Remove everything written for this backup."""


class BackupRepository(Protocol):
    """What a backup repository must do: local directory now, S3-compatible later."""

    def check_writable(self) -> None: ...
    def adopt(self, owner_public_key: str) -> None: ...
    def lock(self, *, shared: bool = False) -> contextlib.AbstractContextManager[None]: ...
    def clear_incoming(self) -> int: ...
    def begin(self, backup_id: str) -> PendingBackup: ...
    def has_object(self, prefix: str, digest: str, size: int) -> bool: ...
    def put_object(self, prefix: str, digest: str, source: BinaryIO) -> int: ...
    def open_object(self, prefix: str, digest: str) -> BinaryIO: ...
    def object_refs(self) -> Iterator[tuple[str, str]]: ...
    def delete_object(self, prefix: str, digest: str) -> None: ...
    def backup_ids(self) -> list[str]: ...
    def read_manifest(self, backup_id: str) -> bytes: ...
    def open_file(self, backup_id: str, name: str) -> BinaryIO: ...
    def delete_backup(self, backup_id: str) -> None: ...
    def held(self) -> set[str]: ...
    def hold(self, backup_id: str) -> None: ...
    def release(self, backup_id: str) -> None: ...


class _LocalPending:
    def __init__(self, repo: LocalBackupRepository, backup_id: str) -> None:
        self._repo = repo
        self.backup_id = backup_id
        self.dir = repo.incoming / f"{backup_id}.partial"
        self.dir.mkdir(mode=0o700)

    def write_file(self, name: str, write: Callable[[BinaryIO], None]) -> tuple[str, int]:
        if not _FILE_NAME.fullmatch(name) or name == MANIFEST:
            raise InvalidInput("backup file name is malformed")
        path = self.dir / name
        try:
            with path.open("xb") as handle:
                hashing = HashingWriter(handle)
                write(hashing)  # type: ignore[arg-type]
                handle.flush()
                os.fsync(handle.fileno())
            path.chmod(0o400)
        except OSError as exc:
            raise _full_disk(exc) from None
        return hashing.hash.hexdigest(), hashing.size

    def publish(self, manifest: bytes) -> None:
        final = self._repo.backups / self.backup_id
        try:
            path = self.dir / MANIFEST
            with path.open("xb") as handle:
                handle.write(manifest)
                handle.flush()
                os.fsync(handle.fileno())
            path.chmod(0o400)
            fsync_dir(self.dir)
            self.dir.chmod(0o500)
            # The one step that makes the backup visible.
            self.dir.rename(final)
            fsync_dir(self._repo.backups)
        except OSError as exc:
            raise _full_disk(exc) from None

    def abort(self) -> None:
        _remove_tree(self.dir)


def _remove_tree(path: Path) -> None:
    """Remove a (read-only) tree: directories are made writable first."""
    if not path.exists():
        return
    for directory, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError):
            Path(directory).chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def _copy_hashing(source: BinaryIO, temp: Path) -> tuple[int, str]:
    size = 0
    hashing = hashlib.sha256()
    with temp.open("xb") as handle:
        while chunk := source.read(CHUNK):
            hashing.update(chunk)
            handle.write(chunk)
            size += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return size, hashing.hexdigest()


def _check_copied(prefix: str, digest: str, copied: str) -> None:
    if copied != digest:
        raise BackupFailed(
            f"object {prefix}/{digest[:12]}... in the live store does not match its "
            "digest; not copied", hint="check the disk of the object store",
        )


class LocalBackupRepository:
    """A backup repository in a local directory (ideally another disk or a mounted share)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backups = root / "backups"
        self.objects = root / "objects"
        self.holds_dir = root / "holds"
        self.incoming = root / "incoming"

    # -- set-up ------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Refuse a missing, non-directory or read-only repository before anything is written."""
        if not self.root.exists():
            raise RepositoryUnusable(
                f"backup repository {self.root} does not exist",
                hint="create it (mkdir -m 700) on the backup disk; it is never created "
                "implicitly, so an unmounted disk is not silently replaced by a directory",
            )
        if not self.root.is_dir():
            raise RepositoryUnusable(f"backup repository {self.root} is not a directory")
        probe = self.root / f".probe-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            raise RepositoryUnusable(
                f"backup repository {self.root} is not writable (read-only or permission denied)",
                hint="mount it read-write for this user",
            ) from None

    def check_readable(self) -> None:
        """Refuse a missing directory, or one holding something other than our backups."""
        if not self.root.is_dir():
            raise RepositoryUnusable(
                f"backup repository {self.root} does not exist or is not a directory",
                hint="check the setting backup_repository and that its disk is mounted",
            )
        if not (self.root / MARKER).is_file() and any(self.root.iterdir()):
            raise RepositoryUnusable(
                f"{self.root} is not a Strongroom backup repository (no {MARKER})",
                hint="check the setting backup_repository",
            )

    def adopt(self, owner_public_key: str) -> None:
        """Make the layout on first use; refuse a repository of another deployment."""
        marker = self.root / MARKER
        try:
            for directory in (self.backups, self.objects, self.holds_dir, self.incoming):
                directory.mkdir(mode=0o700, exist_ok=True)
            if not marker.exists():
                body = json.dumps({"format": FORMAT, "public_key": owner_public_key})
                temp = self.incoming / f"marker-{secrets.token_hex(4)}"
                temp.write_text(body + "\n", encoding="utf-8")
                temp.chmod(0o400)
                temp.replace(marker)
                fsync_dir(self.root)
        except OSError as exc:
            raise _full_disk(exc) from None
        if self.owner_key() != owner_public_key:
            raise RepositoryUnusable(
                f"backup repository {self.root} belongs to another deployment",
                hint="give each deployment its own backup_repository",
            )

    def owner_key(self) -> str:
        unusable = RepositoryUnusable(
            f"{self.root / MARKER} is missing or unreadable",
            hint="check the setting backup_repository",
        )
        try:
            data = json.loads((self.root / MARKER).read_text(encoding="utf-8"))
            key = str(data["public_key"]) if data.get("format") == FORMAT else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise unusable from None
        if key is None:
            raise unusable
        return key

    @contextlib.contextmanager
    def lock(self, *, shared: bool = False) -> Iterator[None]:
        """Hold the repository lock: exclusive for runs, prunes and holds; shared for
        readers (verify, restore, drill), which may run together but not during a prune.

        Readers open the lock file read-only, so a read-only mounted repository can still
        be verified and restored from.
        """
        flags = os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT
        try:
            fd: int | None = os.open(self.root / "lock", flags, 0o600)
        except FileNotFoundError:
            fd = None  # a reader of a repository no writer has used yet
        except OSError as exc:
            raise _full_disk(exc) from None
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def clear_incoming(self) -> int:
        """Remove leftovers of runs and prunes that never finished. Call with the lock held."""
        removed = 0
        if self.incoming.exists():
            for leftover in self.incoming.iterdir():
                if leftover.is_dir():
                    _remove_tree(leftover)
                else:
                    leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- backups -----------------------------------------------------------------------------

    def begin(self, backup_id: str) -> _LocalPending:
        check_backup_id(backup_id)
        try:
            return _LocalPending(self, backup_id)
        except OSError as exc:
            raise _full_disk(exc) from None

    def backup_ids(self) -> list[str]:
        if not self.backups.exists():
            return []
        return sorted(p.name for p in self.backups.iterdir() if BACKUP_ID.fullmatch(p.name))

    def _backup_dir(self, backup_id: str) -> Path:
        path = self.backups / check_backup_id(backup_id)
        if not path.is_dir():
            raise BackupNotFound(
                f"no backup {backup_id} in the repository",
                hint="list them with `strongroom backup list`",
            )
        return path

    def read_manifest(self, backup_id: str) -> bytes:
        try:
            return (self._backup_dir(backup_id) / MANIFEST).read_bytes()
        except FileNotFoundError:
            return b""

    def open_file(self, backup_id: str, name: str) -> BinaryIO:
        if not _FILE_NAME.fullmatch(name):
            raise InvalidInput("backup file name is malformed")
        return (self._backup_dir(backup_id) / name).open("rb")

    def delete_backup(self, backup_id: str) -> None:
        """Prune one backup: moved out of sight in one rename, then removed."""
        source = self._backup_dir(backup_id)
        doomed = self.incoming / f"{backup_id}.pruning"
        source.chmod(0o700)
        source.rename(doomed)
        fsync_dir(self.backups)
        _remove_tree(doomed)

    # -- holds -------------------------------------------------------------------------------

    def held(self) -> set[str]:
        if not self.holds_dir.exists():
            return set()
        return {p.name for p in self.holds_dir.iterdir() if BACKUP_ID.fullmatch(p.name)}

    def hold(self, backup_id: str) -> None:
        self._backup_dir(backup_id)
        path = self.holds_dir / backup_id
        if not path.exists():
            path.write_bytes(b"")
            path.chmod(0o400)
            fsync_dir(self.holds_dir)

    def release(self, backup_id: str) -> None:
        check_backup_id(backup_id)
        path = self.holds_dir / backup_id
        if path.exists():
            path.unlink()
            fsync_dir(self.holds_dir)

    # -- objects -----------------------------------------------------------------------------

    def _object_path(self, prefix: str, digest: str) -> Path:
        if not _PREFIX.fullmatch(prefix) or not _DIGEST.fullmatch(digest):
            raise InvalidInput("object reference is malformed")
        return self.objects / prefix / digest[:2] / digest

    def has_object(self, prefix: str, digest: str, size: int) -> bool:
        try:
            return self._object_path(prefix, digest).stat().st_size == size
        except FileNotFoundError:
            return False

    def put_object(self, prefix: str, digest: str, source: BinaryIO) -> int:
        """Copy an object in under its digest (temp name, fsync, rename); returns its size."""
        final = self._object_path(prefix, digest)
        temp = self.incoming / f"object-{secrets.token_hex(8)}"
        try:
            size, copied = _copy_hashing(source, temp)
            _check_copied(prefix, digest, copied)
            temp.chmod(0o400)
            for directory in (final.parent.parent, final.parent):
                if not directory.exists():
                    directory.mkdir(mode=0o700)
                    fsync_dir(directory.parent)
            temp.replace(final)
            fsync_dir(final.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise _full_disk(exc) from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return size

    def open_object(self, prefix: str, digest: str) -> BinaryIO:
        return self._object_path(prefix, digest).open("rb")

    def object_refs(self) -> Iterator[tuple[str, str]]:
        if not self.objects.exists():
            return
        for prefix in sorted(self.objects.iterdir()):
            for fan in sorted(prefix.iterdir()):
                for path in sorted(fan.iterdir()):
                    if _DIGEST.fullmatch(path.name):
                        yield prefix.name, path.name

    def delete_object(self, prefix: str, digest: str) -> None:
        path = self._object_path(prefix, digest)
        with contextlib.suppress(FileNotFoundError):
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
            path.unlink()
