"""A deployment: one home directory, its settings, database, keys and object store.

``initialise`` makes a new one (and removes everything it made if any step
fails); ``open_deployment`` checks that settings, schema and master key fit
together before anything else runs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from strongroom import db
from strongroom.audit import Actor, AuditTrail, EventTag
from strongroom.audit.policy import checkpoint_policy
from strongroom.config import CONFIG_FILE, Environment, Settings, load_settings, write_config_file
from strongroom.crypto import certificates, master
from strongroom.crypto.keystore import KeyStore
from strongroom.errors import ConfigurationError
from strongroom.storage.local import LocalObjectStore

if TYPE_CHECKING:
    from strongroom.analysis.cache import QueryCache


@dataclasses.dataclass
class Deployment:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyStore
    store: LocalObjectStore
    audit: AuditTrail
    # Made on first query by analysis.cache.deployment_query_cache; holds decrypted data.
    query_cache: QueryCache | None = dataclasses.field(default=None, repr=False, compare=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with db.transaction(self.sessions) as session:
            yield session

    def close(self) -> None:
        if self.query_cache is not None:
            self.query_cache.close()
        self.engine.dispose()


def open_deployment(settings: Settings) -> Deployment:
    """Open an initialised deployment; refuse a wrong master key or a stale schema."""
    key = master.load_master_key(settings)
    engine = db.create_db_engine(settings.sqlalchemy_url)
    try:
        db.check_schema_current(engine)
        keys = KeyStore(key.environment_aead(settings.environment), settings.environment)
        sessions = db.session_factory(engine)
        with db.transaction(sessions) as session:
            keys.check(session)
            audit = AuditTrail(keys.audit_keys(session), checkpoint_policy(settings))
        store = LocalObjectStore(settings.objects_dir)
        store.clear_incoming()
    except BaseException:
        engine.dispose()
        raise
    return Deployment(settings, engine, sessions, keys, store, audit)


def _refuse_existing(home: Path) -> None:
    for marker in (CONFIG_FILE, "master.key", "strongroom.db"):
        if (home / marker).exists():
            raise ConfigurationError(
                f"{home} already holds a deployment ({marker} exists)",
                hint="choose an empty directory, or use the existing deployment",
            )


def _refuse_shared_database(conn: Connection) -> None:
    # Refuse a shared database that already holds a deployment, before touching it.
    if conn.dialect.has_table(conn, "deployment"):
        raise ConfigurationError(
            "the database at database_url already holds a deployment",
            hint="give each deployment its own database",
        )


def _first_missing(path: Path) -> Path:
    """The topmost directory that creating ``path`` would make (to remove it all on failure)."""
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top


def _make_home(home: Path) -> None:
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create home directory {home}: {exc.strerror}",
            hint="choose a --home whose parent is a writable directory",
        ) from None


def initialise(
    home: Path,
    environment: Environment,
    database_url: str = "",
    extra_settings: dict[str, object] | None = None,
    actor: Actor | None = None,
) -> Settings:
    """Create a new deployment in ``home``. On any failure, everything made is removed."""
    created_home = not home.exists()
    made_root = _first_missing(home) if created_home else None
    if not created_home:
        if not home.is_dir():
            raise ConfigurationError(
                f"{home} is not a directory", hint="pass a directory as --home"
            )
        if not os.access(home, os.W_OK | os.X_OK):
            raise ConfigurationError(f"home directory {home} is not writable by this user")
        _refuse_existing(home)
    made: list[Path] = []
    engine: Engine | None = None
    try:
        _make_home(home)
        values: dict[str, object] = {"environment": environment.value}
        if database_url:
            values["database_url"] = database_url
        values.update(extra_settings or {})
        made.append(home / CONFIG_FILE)
        write_config_file(home, values)
        settings = load_settings(home)
        if not settings.master_key:
            made.append(settings.master_key_file)
            master.generate_master_key_file(settings.master_key_file)
        tls_dir = home / "tls"
        if not settings.sources.get("tls_cert_file") and not tls_dir.exists():
            made.append(tls_dir)
            certificates.generate_local_tls(tls_dir)
        if not settings.objects_dir.exists():
            made.append(settings.objects_dir)
            settings.objects_dir.mkdir(mode=0o700, parents=True)
        if not settings.database_url:
            made += [home / "strongroom.db", home / "strongroom.db-wal", home / "strongroom.db-shm"]
        engine = db.create_db_engine(settings.sqlalchemy_url)
        keys = KeyStore(
            master.load_master_key(settings).environment_aead(settings.environment),
            settings.environment,
        )
        try:
            with engine.begin() as conn:
                _refuse_shared_database(conn)
                # Schema and deployment record in one transaction: all or nothing.
                db.migrate(conn)
                with Session(bind=conn) as session:
                    keys.initialise(session)
                    AuditTrail(keys.audit_keys(session), checkpoint_policy(settings)).record_event(
                        session,
                        EventTag.DEPLOYMENT_INIT,
                        actor=actor or Actor.system(),
                        details={"environment": settings.environment.value,
                                 "database": settings.sqlalchemy_url.split(":", 1)[0]},
                    )
                    session.flush()
        except OperationalError as exc:
            raise ConfigurationError(
                f"cannot use the metadata database: {exc.orig.__class__.__name__}",
                hint="check database_url and that the database is running and reachable",
            ) from None
    except BaseException:
        if engine is not None:
            engine.dispose()
        _remove(made, made_root)
        raise
    engine.dispose()
    return settings


def _remove(paths: list[Path], home: Path | None) -> None:
    for path in reversed(paths):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
