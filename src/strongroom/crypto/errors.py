"""What can go wrong with keys and ciphertexts. Messages never include key material."""

from strongroom.errors import ConfigurationError, StrongroomError


class MasterKeyError(ConfigurationError):
    """The master key is missing, malformed, insecurely stored or does not fit this deployment."""


class DecryptionFailed(StrongroomError):
    """A ciphertext failed authentication: tampered, truncated, or opened with the wrong context."""

    status = 500
    slug = "integrity"
    title = "Stored data failed its integrity check"


class KeyNotFound(StrongroomError):
    status = 404
    slug = "key-not-found"
    title = "Key not found"
