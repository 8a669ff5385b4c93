"""The credentials file: server, tenant, token and trusted CA, readable by its owner only.

It lives in ``$STRONGROOM_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/strongroom``, else
``~/.config/strongroom``, as ``credentials.json`` with mode 0600 in a directory
with mode 0700. A file that others could read is refused rather than used: the
token in it may already have leaked, and the user should know.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from strongroom.cli.client.errors import ClientError

CONFIG_DIR_ENV = "STRONGROOM_CONFIG_DIR"
CREDENTIALS_FILE = "credentials.json"
_LOGIN_HINT = "strongroom login --server URL --tenant SLUG --email EMAIL --password-stdin"


@dataclass(frozen=True)
class Credentials:
    server: str
    tenant: str
    token: str
    # PEM text of the CA that signs the server's certificate; None trusts the system's CAs.
    ca: str | None = None
    token_id: str | None = None
    email: str | None = None


def config_dir() -> Path:
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "strongroom"


def credentials_path() -> Path:
    return config_dir() / CREDENTIALS_FILE


def private_dir() -> Path:
    """The config directory, created 0700 (and narrowed to 0700 if it was wider)."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid():
        raise ClientError(f"{directory} belongs to another user; refusing to keep a token there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)
    return directory


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as 0600, atomically (a temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def read_private(path: Path) -> bytes | None:
    """The bytes of ``path``, or None if it does not exist; refused if others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid != os.getuid():
            raise ClientError(f"{path} belongs to another user; refusing to use it")
        if mode & 0o077:
            raise ClientError(
                f"{path} is readable by other users (mode {mode:04o}); refusing to use it: "
                f"its token may have leaked. Log out or revoke the token, then log in again "
                f"(or chmod 600 {path} if you are sure nobody read it)"
            )
        return handle.read()


def save(credentials: Credentials) -> Path:
    path = private_dir() / CREDENTIALS_FILE
    body = json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n"
    write_private(path, body.encode("utf-8"))
    return path


def load() -> Credentials:
    """The stored credentials; a clear error when not logged in or the file is unusable."""
    path = credentials_path()
    data = read_private(path)
    if data is None:
        raise ClientError(f"not logged in (no {path}): {_LOGIN_HINT}")
    try:
        raw: Any = json.loads(data)
        return Credentials(
            server=str(raw["server"]), tenant=str(raw["tenant"]), token=str(raw["token"]),
            ca=raw.get("ca"), token_id=raw.get("token_id"), email=raw.get("email"),
        )
    except (ValueError, KeyError, TypeError):
        raise ClientError(f"{path} is not a credentials file; log in again: {_LOGIN_HINT}"
                          ) from None


def forget() -> bool:
    """Delete the credentials file; False if there was none."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True
