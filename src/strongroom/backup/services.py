"""Backup runs, listing, verification and restore.

A run takes, in this order: a consistent dump of the metadata database
(encrypted under a fresh per-backup data key wrapped by the environment KEK),
the deployment's home files (settings, TLS, exported audit checkpoints — never
the master key), then every object of the store that the repository does not
already hold. Objects are immutable and content-addressed, so listing them
after the dump covers every object the dump refers to. The signed manifest is
written last, and only then does the backup become visible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
import secrets
import shutil
import tomllib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from strongroom.audit.models import AuditHead
from strongroom.backup import manifest as manifests
from strongroom.backup import snapshot
from strongroom.backup.errors import BackupCorrupted, RepositoryUnusable, RestoreRefused
from strongroom.backup.manifest import FileEntry, Manifest, ObjectEntry
from strongroom.backup.repository import CHUNK, LocalBackupRepository
from strongroom.config import CONFIG_FILE, Environment, Settings, write_config_file
from strongroom.crypto import backup_keys
from strongroom.crypto.errors import DecryptionFailed, MasterKeyError
from strongroom.crypto.keyring import DataKey
from strongroom.crypto.keystore import KeyStore
from strongroom.db import utcnow
from strongroom.deployment import Deployment

DATABASE_FILE = "database.sr"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class BackupKind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclasses.dataclass(frozen=True)
class BackupResult:
    backup_id: str
    kind: str
    objects: int
    objects_copied: int
    bytes_copied: int
    database_bytes: int


@dataclasses.dataclass
class VerifyReport:
    backup_id: str
    files: int = 0
    objects: int = 0
    bytes_read: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise BackupCorrupted(f"{self.problems[0]}{more}")


@dataclasses.dataclass(frozen=True)
class BackupSummary:
    backup_id: str
    kind: str
    created_at: str
    objects: int
    object_bytes: int
    held: bool
    problem: str | None


# -- the repository ---------------------------------------------------------------------------


def repository_for(settings: Settings) -> LocalBackupRepository:
    """The configured repository; refuses one that is unset, inside HOME or containing it."""
    if settings.sources.get("backup_repository") is None:
        raise RepositoryUnusable(
            "setting backup_repository is not set",
            hint="set it in strongroom.toml (or STRONGROOM_BACKUP_REPOSITORY) to a directory "
            "on another disk, outside HOME",
        )
    root = settings.backup_repository.expanduser().resolve()
    home = settings.home.resolve()
    if root.is_relative_to(home):
        raise RepositoryUnusable(
            f"backup_repository {root} is inside HOME {home}",
            hint="a backup on the same disk as the deployment is lost with it; use another disk",
        )
    if home.is_relative_to(root):
        raise RepositoryUnusable(f"backup_repository {root} contains HOME {home}")
    return LocalBackupRepository(root)


def _expected_key(dep: Deployment) -> str:
    with dep.transaction() as session:
        return dep.keys.backup_signing_key(session).public_key.hex()


# -- running a backup -------------------------------------------------------------------------


def _home_files(settings: Settings) -> list[tuple[str, Path]]:
    """Files under HOME a restored deployment needs; never the master key or the database."""
    home = settings.home
    candidates = [home / CONFIG_FILE, settings.audit_checkpoint_file]
    tls = home / "tls"
    if tls.is_dir():
        candidates += sorted(p for p in tls.rglob("*") if p.is_file())
    master_key = settings.master_key_file.resolve()
    files = []
    for path in candidates:
        resolved = path.resolve()
        if resolved == master_key or not resolved.is_relative_to(home.resolve()):
            continue
        if resolved.is_file():
            files.append((resolved.relative_to(home.resolve()).as_posix(), resolved))
    return files


def _store_objects(store_root: Path) -> Iterator[tuple[str, str, Path]]:
    tenants = store_root / "tenants"
    if not tenants.is_dir():
        return
    for prefix in sorted(tenants.iterdir()):
        for fan in sorted(prefix.iterdir()):
            for path in sorted(fan.iterdir()):
                if _DIGEST.fullmatch(path.name):
                    yield prefix.name, path.name, path


def new_backup_id(kind: BackupKind, now: dt.datetime) -> str:
    moment = now.astimezone(dt.UTC)
    stamp = f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{kind.value}-{secrets.token_hex(3)}"


def run_backup(
    dep: Deployment, kind: BackupKind = BackupKind.DAILY, now: dt.datetime | None = None
) -> BackupResult:
    """Take one backup into the configured repository; visible only once complete.

    On any failure (full disk, dump error, a crash) nothing is published and earlier
    backups are untouched; leftovers are removed by the next run.
    """
    settings = dep.settings
    repo = repository_for(settings)
    repo.check_writable()
    with dep.transaction() as session:
        signer = dep.keys.backup_signing_key(session)
        audit_seq = int(session.scalar(sa.select(AuditHead.seq)) or 0)
    repo.adopt(signer.public_key.hex())
    created = now or utcnow()
    with repo.lock():
        repo.clear_incoming()
        backup_id = new_backup_id(kind, created)
        data_key, wrapped = backup_keys.new_backup_key(dep.keys, backup_id)
        pending = repo.begin(backup_id)
        try:
            files = []
            environment = settings.environment
            context = backup_keys.file_context(environment, backup_id, DATABASE_FILE)
            url = settings.sqlalchemy_url
            schema = snapshot.current_schema(dep.engine)
            digest, size = pending.write_file(
                DATABASE_FILE,
                lambda sink: snapshot.dump_database(dep.engine, url, data_key, context, sink),
            )
            files.append(FileEntry(DATABASE_FILE, "database", digest, size))
            for index, (relative, path) in enumerate(_home_files(settings)):
                name = f"home-{index:03d}.sr"
                file_context = backup_keys.file_context(environment, backup_id, name)

                def seal_file(sink: BinaryIO, path: Path = path, ctx: bytes = file_context) -> None:
                    with path.open("rb") as handle:
                        data_key.seal(ctx, iter(lambda: handle.read(CHUNK), b""), sink)

                digest, size = pending.write_file(name, seal_file)
                files.append(FileEntry(name, f"home:{relative}", digest, size))
            objects = []
            copied = copied_bytes = 0
            for prefix, digest, path in _store_objects(settings.objects_dir):
                size = path.stat().st_size
                if not repo.has_object(prefix, digest, size):
                    with path.open("rb") as handle:
                        repo.put_object(prefix, digest, handle)
                    copied += 1
                    copied_bytes += size
                objects.append(ObjectEntry(prefix, digest, size))
            manifest = Manifest(
                backup_id=backup_id, kind=kind.value,
                created_at=created.astimezone(dt.UTC).isoformat(timespec="seconds"),
                environment=environment.value, backend=snapshot.backend_of(url), schema=schema,
                wrapped_key=wrapped, files=tuple(files), objects=tuple(objects),
                audit_seq=audit_seq, public_key=signer.public_key.hex(),
            )
            pending.publish(manifests.sign(manifest, dep.keys, signer))
        except BaseException:
            pending.abort()
            raise
    return BackupResult(backup_id, kind.value, len(objects), copied, copied_bytes, files[0].size)


# -- listing ----------------------------------------------------------------------------------


def list_backups(dep: Deployment) -> list[BackupSummary]:
    """Every visible backup, oldest first, with its hold and whether its manifest checks out."""
    repo = repository_for(dep.settings)
    repo.check_readable()
    expected = _expected_key(dep)
    held = repo.held()
    rows = []
    for backup_id in repo.backup_ids():
        kind = backup_id.split("-")[1]
        try:
            found = manifests.load(repo.read_manifest(backup_id), backup_id, dep.keys, expected)
        except BackupCorrupted as exc:
            rows.append(BackupSummary(backup_id, kind, "?", 0, 0, backup_id in held, exc.detail))
            continue
        rows.append(BackupSummary(
            backup_id, found.kind, found.created_at, len(found.objects), found.object_bytes,
            backup_id in held, None,
        ))
    return rows


# -- verifying --------------------------------------------------------------------------------


class _HashingReader:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.hash = hashlib.sha256()
        self.size = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
        self.hash.update(memoryview(buffer)[:count])
        self.size += count
        return int(count)

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self.hash.update(chunk)
        self.size += len(chunk)
        return chunk


def _check_file(
    repo: LocalBackupRepository, found: Manifest, entry: FileEntry, data_key: DataKey,
    environment: Environment, report: VerifyReport,
) -> None:
    where = f"backup {found.backup_id}: file {entry.name} ({entry.role})"
    try:
        handle = repo.open_file(found.backup_id, entry.name)
    except FileNotFoundError:
        report.problems.append(f"{where} is missing")
        return
    with handle:
        reader = _HashingReader(handle)
        context = backup_keys.file_context(environment, found.backup_id, entry.name)
        try:
            for _ in data_key.open(context, reader):  # type: ignore[arg-type]
                pass
            tag_problem = None
        except DecryptionFailed:
            tag_problem = f"{where} failed authentication (tampered or truncated)"
        while reader.read(CHUNK):
            pass
    report.bytes_read += reader.size
    if reader.size != entry.size or reader.hash.hexdigest() != entry.sha256:
        report.problems.append(f"{where} does not match its SHA-256 in the manifest (corrupted)")
    elif tag_problem:
        report.problems.append(tag_problem)
    report.files += 1


def _check_object(
    repo: LocalBackupRepository, backup_id: str, entry: ObjectEntry, report: VerifyReport
) -> None:
    where = f"backup {backup_id}: object {entry.prefix}/{entry.digest[:12]}..."
    try:
        handle = repo.open_object(entry.prefix, entry.digest)
    except FileNotFoundError:
        report.problems.append(f"{where} is missing from the repository")
        return
    digest = hashlib.sha256()
    size = 0
    with handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    report.bytes_read += size
    if size != entry.size or digest.hexdigest() != entry.digest:
        report.problems.append(f"{where} does not match its SHA-256 (corrupted)")
    report.objects += 1


def verify_backup(
    repo: LocalBackupRepository, keys: KeyStore, backup_id: str,
    expected_public_key: str | None = None,
) -> tuple[VerifyReport, Manifest | None]:
    """Re-read every byte of one backup: manifest signature and seal, file digests and
    authentication tags, and every object's digest. Problems are listed, not raised."""
    report = VerifyReport(backup_id)
    try:
        found = manifests.load(repo.read_manifest(backup_id), backup_id, keys, expected_public_key)
    except BackupCorrupted as exc:
        report.problems.append(exc.detail)
        return report, None
    if found.environment != keys.environment.value:
        report.problems.append(
            f"backup {backup_id} belongs to the {found.environment} environment"
        )
        return report, found
    try:
        data_key = backup_keys.open_backup_key(keys, found.wrapped_key, backup_id)
    except MasterKeyError:
        report.problems.append(
            f"backup {backup_id}: its data key does not open with this master key"
        )
        return report, found
    for entry in found.files:
        _check_file(repo, found, entry, data_key, keys.environment, report)
    for obj in found.objects:
        _check_object(repo, backup_id, obj, report)
    return report, found


def verify_backups(dep: Deployment, backup_id: str | None = None) -> list[VerifyReport]:
    """Verify one backup, or every visible backup when ``backup_id`` is None."""
    repo = repository_for(dep.settings)
    repo.check_readable()
    expected = _expected_key(dep)
    with repo.lock(shared=True):
        ids = [backup_id] if backup_id else repo.backup_ids()
        if backup_id:
            repo.read_manifest(backup_id)  # BackupNotFound for an unknown id
        return [verify_backup(repo, dep.keys, one, expected)[0] for one in ids]


# -- restoring --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    backup_id: str
    target: Path
    database_url: str
    objects: int
    files: int


def _prepare_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise RestoreRefused(f"{target} is not a directory")
    if target.exists() and any(target.iterdir()):
        if not force:
            raise RestoreRefused(
                f"{target} is not empty", hint="choose an empty directory, or pass --force"
            )
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                for directory, _dirs, _files in os.walk(child):
                    Path(directory).chmod(0o700)
                shutil.rmtree(child)
            else:
                child.unlink()
    target.mkdir(mode=0o700, parents=True, exist_ok=True)


def _home_plaintexts(
    repo: LocalBackupRepository, keys: KeyStore, found: Manifest, data_key: DataKey, target: Path
) -> dict[str, bytes]:
    """Every home file of the backup, decrypted in memory (they are small)."""
    files: dict[str, bytes] = {}
    for entry in found.files:
        if entry.role == "database":
            continue
        relative = entry.role.removeprefix("home:")
        if not (target / relative).resolve().is_relative_to(target):
            raise BackupCorrupted(f"backup {found.backup_id}: file {entry.name} has an unsafe path")
        context = backup_keys.file_context(keys.environment, found.backup_id, entry.name)
        with repo.open_file(found.backup_id, entry.name) as source:
            files[relative] = b"".join(data_key.open(context, source))
    return files


def _database_url(found: Manifest, config: dict[str, object], override: str | None) -> str:
    url = override if override is not None else str(config.get("database_url", ""))
    if found.backend == "sqlite" and url.startswith("postgresql"):
        raise RestoreRefused("this backup holds a SQLite database; restore it without a URL")
    if found.backend == "postgresql" and not url.startswith("postgresql"):
        raise RestoreRefused(
            "this backup holds a PostgreSQL database", hint="pass --database-url of an empty one"
        )
    return url


def _restore_objects(repo: LocalBackupRepository, found: Manifest, target: Path) -> None:
    objects_root = target / "objects"
    (objects_root / ".incoming").mkdir(mode=0o700, parents=True, exist_ok=True)
    for obj in found.objects:
        destination = objects_root / "tenants" / obj.prefix / obj.digest[:2] / obj.digest
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with repo.open_object(obj.prefix, obj.digest) as source, destination.open("xb") as sink:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                sink.write(chunk)
            sink.flush()
            os.fsync(sink.fileno())
        if digest.hexdigest() != obj.digest:
            raise BackupCorrupted(
                f"backup {found.backup_id}: object {obj.prefix}/{obj.digest[:12]}... changed "
                "while being restored"
            )
        destination.chmod(0o400)


def _check_target_allowed(
    repo: LocalBackupRepository, target: Path, protected: tuple[Path, ...]
) -> None:
    for path in protected:
        resolved = path.resolve()
        if resolved == target or resolved.is_relative_to(target):
            raise RestoreRefused(
                f"{target} holds the running deployment or its master key",
                hint="restore into another directory",
            )
    if target.is_relative_to(repo.root.resolve()):
        raise RestoreRefused(f"{target} is inside the backup repository")


def restore_backup(
    repo: LocalBackupRepository,
    keys: KeyStore,
    backup_id: str,
    target: Path,
    *,
    force: bool = False,
    database_url: str | None = None,
    master_key_file: Path | None = None,
    expected_public_key: str | None = None,
    protected: tuple[Path, ...] = (),
) -> RestoreResult:
    """Restore a full deployment (database, home files, objects) into ``target``.

    The whole backup is verified first, so nothing is written from a damaged or forged
    backup. ``target`` must be empty unless ``force`` (then its contents are replaced).
    ``protected`` paths (a live home, the master key) may never be inside ``target``.
    """
    with repo.lock(shared=True):
        return _restore(repo, keys, backup_id, target.expanduser().resolve(), force,
                        database_url, master_key_file, expected_public_key, protected)


def _restore(
    repo: LocalBackupRepository, keys: KeyStore, backup_id: str, target: Path, force: bool,
    database_url: str | None, master_key_file: Path | None, expected_public_key: str | None,
    protected: tuple[Path, ...],
) -> RestoreResult:
    _check_target_allowed(repo, target, protected)
    report, found = verify_backup(repo, keys, backup_id, expected_public_key)
    report.raise_if_failed()
    if found is None:  # pragma: no cover - a manifest problem is always reported
        raise BackupCorrupted(f"backup {backup_id}: manifest is unreadable")
    data_key = backup_keys.open_backup_key(keys, found.wrapped_key, backup_id)
    home_files = _home_plaintexts(repo, keys, found, data_key, target)
    config: dict[str, object] = tomllib.loads(home_files.pop(CONFIG_FILE, b"").decode("utf-8"))
    url = _database_url(found, config, database_url)
    if url:
        snapshot.check_restore_target(url)
    _prepare_target(target, force)
    for relative, plaintext in home_files.items():
        destination = target / relative
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(plaintext)
    config.update({"objects_dir": "objects", "database_url": url})
    if Path(str(config.get("audit_checkpoint_file", ""))).is_absolute():
        # Outside the old home, so not in the backup: start a new file in the new home.
        config["audit_checkpoint_file"] = "audit-checkpoints.jsonl"
    if master_key_file is not None:
        config["master_key_file"] = str(master_key_file.resolve())
    write_config_file(target, {k: v for k, v in config.items() if v != ""})
    context = backup_keys.file_context(keys.environment, backup_id, DATABASE_FILE)
    with repo.open_file(backup_id, DATABASE_FILE) as source:
        snapshot.restore_database(
            url or f"sqlite:///{target / 'strongroom.db'}", data_key, context, source
        )
    _restore_objects(repo, found, target)
    return RestoreResult(backup_id, target, url, len(found.objects), len(found.files))
