"""The master key: root of the key hierarchy, one per deployment.

The raw master key is never used directly. It is stretched with HKDF-SHA256
into a key-encryption key whose ``info`` names the environment, so the same
master key file copied into a test or development deployment derives a
different key and cannot open production keysets. Providers hide where the raw
key comes from (file, environment variable, later a KMS).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tink import aead as tink_aead

from strongroom.config import Environment, Settings
from strongroom.crypto._tink import TinkError
from strongroom.crypto.errors import MasterKeyError

MASTER_KEY_BYTES = 32
_NONCE_BYTES = 12
_HKDF_SALT = b"strongroom/master-key/v1"
_KEY_CHECK = b"strongroom key check v1"


class MasterKeyProvider(Protocol):
    """Where the root key lives. A KMS provider returns an Aead bound to the environment."""

    def environment_aead(self, environment: Environment) -> tink_aead.Aead: ...


class _EnvironmentKek(tink_aead.Aead):  # type: ignore[misc]  # tink ships no type hints
    """AES-256-GCM under a key derived for one environment; usable as a Tink keyset wrapper."""

    def __init__(self, key: bytes) -> None:
        self._aesgcm = AESGCM(key)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aesgcm.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aesgcm.decrypt(
                ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], associated_data
            )
        except InvalidTag:
            # Tink's keyset reader expects its own error type from a wrapping AEAD.
            raise TinkError("master key does not open this ciphertext") from None


class RawMasterKey:
    """A master key held in memory (read from a file or an environment variable)."""

    def __init__(self, key: bytes, origin: str) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise MasterKeyError(
                f"master key from {origin} is {len(key)} bytes, expected {MASTER_KEY_BYTES}",
                hint="generate one with `strongroom init`, or base64-encode 32 random bytes",
            )
        self._key = key
        self.origin = origin

    def environment_aead(self, environment: Environment) -> tink_aead.Aead:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=_HKDF_SALT,
            info=b"strongroom/environment-kek/" + environment.value.encode(),
        ).derive(self._key)
        return _EnvironmentKek(derived)

    def __repr__(self) -> str:
        return f"RawMasterKey(origin={self.origin!r})"


def generate_master_key_file(path: Path) -> None:
    """Create a new master key file, mode 0600, refusing to overwrite one."""
    key = base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)) + b"\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise MasterKeyError(
            f"master key file {path} already exists", hint="refusing to overwrite a key"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())


def _decode(text: str, origin: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(
            f"master key from {origin} is not valid base64",
            hint="it must be base64 of 32 random bytes",
        ) from None


def read_master_key_file(path: Path) -> RawMasterKey:
    """Read the key file, refusing one that group or others can read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MasterKeyError(
            f"master key file {path} is missing",
            hint="restore it from your key backup, or set STRONGROOM_MASTER_KEY",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(
            f"master key file {path} is accessible by group or others (mode {mode & 0o777:o})",
            hint=f"run `chmod 600 {path}`",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:  # not readable by this user, a directory, an I/O error
        raise MasterKeyError(
            f"cannot read master key file {path}: {exc.__class__.__name__}",
            hint="it must be a regular file owned and readable by the deployment's user",
        ) from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MasterKeyError(
            f"master key from {path} is not valid base64",
            hint="it must be base64 of 32 random bytes",
        ) from None
    return RawMasterKey(_decode(text, str(path)), str(path))


def load_master_key(settings: Settings) -> RawMasterKey:
    """The master key from STRONGROOM_MASTER_KEY if set, else from the key file."""
    if settings.master_key:
        return RawMasterKey(_decode(settings.master_key.reveal(), "STRONGROOM_MASTER_KEY"),
                            "STRONGROOM_MASTER_KEY")
    return read_master_key_file(settings.master_key_file)


def make_key_check(kek: tink_aead.Aead, environment: Environment) -> bytes:
    """A small ciphertext stored with the deployment to recognise the right key at start-up."""
    return bytes(kek.encrypt(_KEY_CHECK, environment.value.encode()))


def verify_key_check(
    kek: tink_aead.Aead, check: bytes, environment: Environment, created_as: str
) -> None:
    try:
        plain = kek.decrypt(check, environment.value.encode())
    except TinkError:
        plain = b""
    if plain != _KEY_CHECK:
        if created_as != environment.value:
            raise MasterKeyError(
                f"this deployment was initialised as {created_as}, but settings say "
                f"{environment.value}; its keys cannot be opened in another environment",
                hint="environments are separated by design; use a home made for this environment",
            )
        raise MasterKeyError(
            "the master key does not open this deployment (wrong key)",
            hint="use the key file or STRONGROOM_MASTER_KEY this home was initialised with",
        )
