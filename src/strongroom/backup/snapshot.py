"""Consistent, encrypted dumps of the metadata database, and their restore.

SQLite: the online backup API copies a consistent snapshot into an in-memory
database, which is serialised and encrypted in one go, so no plaintext copy
ever touches a disk. PostgreSQL: ``pg_dump`` (one serialisable snapshot)
streams straight into the encrypting writer. Restores run the other way:
SQLite is rebuilt from the decrypted image; PostgreSQL is fed to ``psql`` in
one transaction, and ``psql`` is killed (so the transaction rolls back) if any
segment fails authentication.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess  # nosec B404
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from strongroom.backup.errors import BackupFailed, RestoreRefused
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import DataKey

CHUNK = 1 << 20
# subprocess runs only pg_dump and psql, found on PATH, without a shell.


def backend_of(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and an environment carrying it."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None)
    return uri.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupFailed(
            f"{name} is not installed", hint="install the PostgreSQL client (postgresql-client)"
        )
    return path


def _drain(stream: IO[bytes], into: list[bytes]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(stream.read()), daemon=True)
    thread.start()
    return thread


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    if stream is None:  # pragma: no cover - every caller asks for a pipe
        raise BackupFailed("a subprocess pipe was not opened")
    return stream


def current_schema(engine: Engine) -> str | None:
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT current_schema()")).scalar_one())


def dump_database(
    engine: Engine, url: str, data_key: DataKey, context: bytes, sink: BinaryIO
) -> None:
    """Write an encrypted, consistent dump of the metadata database to ``sink``."""
    if backend_of(url) == "sqlite":
        path = make_url(url).database
        source = sqlite3.connect(str(path))
        memory = sqlite3.connect(":memory:")
        try:
            source.backup(memory)
            image = bytearray(memory.serialize())
        except sqlite3.Error as exc:
            raise BackupFailed(f"cannot snapshot the SQLite database: {exc}") from None
        finally:
            source.close()
            memory.close()
        # Header bytes 18-19 say "WAL"; an image must say "rollback journal" to be loaded
        # again (the restored deployment switches itself back to WAL when it opens).
        image[18:20] = b"\x01\x01"
        writer = data_key.sealing_writer(context, sink)
        writer.write(image)
        writer.close()
        del image
        return
    schema = current_schema(engine)
    uri, env = _libpq(url)
    command = [_tool("pg_dump"), "--no-owner", "--no-privileges", "--format=plain"]
    if schema and schema != "public":
        command += ["--schema", schema]
    # A fixed program, no shell; the arguments come from our own settings.
    with subprocess.Popen(  # noqa: S603  # nosec B603
        [*command, "--dbname", uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        stdout, stderr = _pipe(process.stdout), _pipe(process.stderr)
        errors: list[bytes] = []
        drain = _drain(stderr, errors)
        try:
            writer = data_key.sealing_writer(context, sink)
            while chunk := stdout.read(CHUNK):
                writer.write(chunk)
            writer.close()
        except BaseException:
            process.kill()
            raise
        finally:
            code = process.wait()
            drain.join()
    if code != 0:
        raise BackupFailed(
            f"pg_dump failed with exit code {code}",
            hint="check database_url, that the server is reachable and pg_dump's version",
        )


def _sqlite_target(url: str) -> Path:
    return Path(str(make_url(url).database))


def check_restore_target(url: str) -> None:
    """Refuse a database that already holds a deployment."""
    if backend_of(url) == "sqlite":
        if _sqlite_target(url).exists():
            raise RestoreRefused("the target SQLite database file already exists")
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.has_table(conn, "deployment"):
                raise RestoreRefused(
                    "the target PostgreSQL database already holds a deployment",
                    hint="restore into an empty database (or drop the old one first)",
                )
    except sa.exc.OperationalError as exc:
        raise RestoreRefused(
            f"cannot connect to the target database: {exc.orig.__class__.__name__}",
            hint="create it and check --database-url",
        ) from None
    finally:
        engine.dispose()


def restore_database(
    url: str, data_key: DataKey, context: bytes, source: BinaryIO
) -> None:
    """Rebuild the metadata database at ``url`` from an encrypted dump."""
    plaintext: Iterator[bytes] = data_key.open(context, source)
    if backend_of(url) == "sqlite":
        image = b"".join(plaintext)  # authenticated in full before anything is written
        target = _sqlite_target(url)
        memory = sqlite3.connect(":memory:")
        restored = sqlite3.connect(str(target))
        try:
            memory.deserialize(image)
            memory.backup(restored)
        except sqlite3.Error as exc:
            target.unlink(missing_ok=True)
            raise BackupFailed(f"cannot rebuild the SQLite database: {exc}") from None
        finally:
            memory.close()
            restored.close()
        target.chmod(0o600)
        return
    uri, env = _libpq(url)
    # A fixed program, no shell; the arguments come from our own settings.
    with subprocess.Popen(  # noqa: S603  # nosec B603
        [_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
         "--dbname", uri, "-f", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    ) as process:
        stdin, stderr = _pipe(process.stdin), _pipe(process.stderr)
        errors: list[bytes] = []
        drain = _drain(stderr, errors)
        try:
            for chunk in plaintext:
                stdin.write(chunk)
            stdin.close()
        except DecryptionFailed:
            # Killing psql drops its connection, so the single transaction rolls back.
            process.kill()
            raise
        except BrokenPipeError:
            pass
        finally:
            code = process.wait()
            drain.join()
    if code != 0:
        raise BackupFailed(
            f"psql failed to load the database dump (exit code {code})",
            hint="restore into an empty database with the same PostgreSQL major version",
        )


@contextlib.contextmanager
def scratch_postgres(url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside ``url``'s, dropped afterwards (for drills)."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise BackupFailed(
            f"cannot create a scratch database for the drill: {exc.__class__.__name__}",
            hint="the database user needs the CREATEDB right for restore drills",
        ) from None
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
