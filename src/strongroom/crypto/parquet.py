"""Parquet modular encryption keyed by the tenant keyset.

pyarrow generates a fresh data key per file (and per column key when used);
our :class:`TenantParquetKms` wraps each with the tenant's Tink AEAD keyset.
Data keys are 256-bit (``data_key_length_bits=256``; pyarrow's default is 128)
and wrapped directly by the tenant KEK (single wrapping), so the tenant keyset,
which is versioned and rotatable, is the only key-encryption key involved.
"""

from __future__ import annotations

import base64
import datetime as dt

import pyarrow.dataset as ds
import pyarrow.parquet.encryption as pqe

from strongroom.crypto.keyring import TenantKeyRing

FOOTER_KEY_ID = "tenant-kek"
DATA_KEY_BITS = 256
ALGORITHM = "AES_GCM_V1"


def _context(ring: TenantKeyRing, master_key_identifier: str) -> bytes:
    return (
        f"strongroom/parquet-key/{ring.environment.value}/{ring.tenant_id}/"
        f"{master_key_identifier}"
    ).encode()


class TenantParquetKms(pqe.KmsClient):  # type: ignore[misc]
    """A pyarrow KmsClient whose "KMS" is the tenant keyset in this process."""

    def __init__(self, ring: TenantKeyRing) -> None:
        super().__init__()
        self._ring = ring

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        wrapped = self._ring.encrypt(bytes(key_bytes), _context(self._ring, master_key_identifier))
        return base64.b64encode(wrapped).decode("ascii")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return self._ring.decrypt(
            base64.b64decode(wrapped_key), _context(self._ring, master_key_identifier)
        )


class ParquetCrypto:
    """Encryption and decryption properties for one tenant's Parquet files."""

    def __init__(self, ring: TenantKeyRing) -> None:
        self._factory = pqe.CryptoFactory(lambda _config: TenantParquetKms(ring))
        self._kms_config = pqe.KmsConnectionConfig()

    def encryption_properties(self) -> pqe.FileEncryptionProperties:
        config = pqe.EncryptionConfiguration(
            footer_key=FOOTER_KEY_ID,
            uniform_encryption=True,
            encryption_algorithm=ALGORITHM,
            data_key_length_bits=DATA_KEY_BITS,
            double_wrapping=False,
            plaintext_footer=False,
            cache_lifetime=dt.timedelta(minutes=5),
        )
        return self._factory.file_encryption_properties(self._kms_config, config)

    def decryption_properties(self) -> pqe.FileDecryptionProperties:
        config = pqe.DecryptionConfiguration(cache_lifetime=dt.timedelta(minutes=5))
        return self._factory.file_decryption_properties(self._kms_config, config)

    def dataset_format(self) -> ds.ParquetFileFormat:
        """A ``pyarrow.dataset`` Parquet format that decrypts this tenant's files as it scans."""
        config = ds.ParquetDecryptionConfig(
            self._factory,
            self._kms_config,
            pqe.DecryptionConfiguration(cache_lifetime=dt.timedelta(minutes=5)),
        )
        return ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(decryption_config=config)
        )
