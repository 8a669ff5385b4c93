"""Parquet modular encryption with the tenant keyset: AES-GCM, 256-bit data keys, no leaks."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pqe
import pytest

from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import FOOTER_KEY_ID, ParquetCrypto, TenantParquetKms

CANARY = "canary-5e1b7d@example.net"


def sample_table() -> pa.Table:
    return pa.table({
        "email": [f"{CANARY}-{i}" for i in range(500)],
        "age": list(range(500)),
    })


def write(ring: TenantKeyRing, path: Path, table: pa.Table | None = None) -> Path:
    pq.write_table(
        table or sample_table(), path,
        encryption_properties=ParquetCrypto(ring).encryption_properties(),
    )
    return path


def read(ring: TenantKeyRing, path: Path) -> pa.Table:
    return pq.read_table(path, decryption_properties=ParquetCrypto(ring).decryption_properties())


def crypto_metadata(path: Path) -> bytes:
    """The FileCryptoMetaData and encrypted footer at the end of an encrypted-footer file.

    Layout: ... | FileCryptoMetaData | encrypted FileMetaData | length (4, LE) | "PARE".
    """
    data = path.read_bytes()
    assert data[:4] == data[-4:] == b"PARE", "footer is not encrypted"
    (length,) = struct.unpack("<I", data[-8:-4])
    return data[-8 - length : -8]


def algorithm(path: Path) -> str:
    # FileCryptoMetaData is Thrift compact: field 1 is the EncryptionAlgorithm union
    # (header 0x1C); its set member is field 1, AES_GCM_V1 (0x1C), or field 2,
    # AES_GCM_CTR_V1 (0x2C).
    head = crypto_metadata(path)[:2]
    return {b"\x1c\x1c": "AES_GCM_V1", b"\x1c\x2c": "AES_GCM_CTR_V1"}[head]


def key_materials(path: Path) -> list[dict[str, object]]:
    found = re.findall(rb'\{"keyMaterialType".*?\}', path.read_bytes())
    return [json.loads(item) for item in found]


def test_round_trip(ring: TenantKeyRing, tmp_path: Path) -> None:
    path = write(ring, tmp_path / "data.parquet")
    assert read(ring, path).equals(sample_table())


def test_no_plaintext_in_the_file(ring: TenantKeyRing, tmp_path: Path) -> None:
    data = write(ring, tmp_path / "data.parquet").read_bytes()
    assert CANARY.encode() not in data
    assert b"email" not in data  # the schema sits in the encrypted footer too


def test_control_canary_is_found_in_a_plaintext_file(tmp_path: Path) -> None:
    # Shows the scan above would see the canary if it were there.
    path = tmp_path / "plain.parquet"
    pq.write_table(sample_table(), path, compression="none")
    assert CANARY.encode() in path.read_bytes()


def test_another_tenant_cannot_read(
    ring: TenantKeyRing, other_ring: TenantKeyRing, tmp_path: Path
) -> None:
    path = write(ring, tmp_path / "data.parquet")
    with pytest.raises(DecryptionFailed, match="failed authentication"):
        read(other_ring, path)


def test_no_decryption_properties_cannot_read(ring: TenantKeyRing, tmp_path: Path) -> None:
    path = write(ring, tmp_path / "data.parquet")
    with pytest.raises(OSError, match="no decryption found"):
        pq.read_table(path)


def test_file_declares_aes_gcm_v1(ring: TenantKeyRing, tmp_path: Path) -> None:
    assert algorithm(write(ring, tmp_path / "data.parquet")) == "AES_GCM_V1"


def test_control_algorithm_reader_sees_gcm_ctr(ring: TenantKeyRing, tmp_path: Path) -> None:
    factory = pqe.CryptoFactory(lambda _config: TenantParquetKms(ring))
    config = pqe.EncryptionConfiguration(
        footer_key=FOOTER_KEY_ID, uniform_encryption=True, encryption_algorithm="AES_GCM_CTR_V1"
    )
    path = tmp_path / "ctr.parquet"
    pq.write_table(
        sample_table(), path,
        encryption_properties=factory.file_encryption_properties(pqe.KmsConnectionConfig(), config),
    )
    assert algorithm(path) == "AES_GCM_CTR_V1"


def test_data_keys_are_256_bits_wrapped_by_the_tenant_keyset(
    ring: TenantKeyRing, tmp_path: Path
) -> None:
    path = write(ring, tmp_path / "data.parquet")
    materials = key_materials(path)
    assert materials, "no key material in the footer"
    kms = TenantParquetKms(ring)
    for material in materials:
        assert material["masterKeyID"] == FOOTER_KEY_ID
        assert material["doubleWrapping"] is False
        wrapped = str(material["wrappedDEK"])
        assert TenantKeyRing.key_id_of(base64.b64decode(wrapped)) == ring.primary_key_id
        assert len(kms.unwrap_key(wrapped, FOOTER_KEY_ID)) == 32


class _ObservingKms(TenantParquetKms):
    """Records the size of every data key pyarrow hands over for wrapping."""

    sizes: list[int]

    def __init__(self, ring: TenantKeyRing) -> None:
        super().__init__(ring)
        self.sizes = []

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        self.sizes.append(len(key_bytes))
        return super().wrap_key(key_bytes, master_key_identifier)


def test_control_pyarrow_default_would_be_128_bits(ring: TenantKeyRing, tmp_path: Path) -> None:
    # Why data_key_length_bits=256 must be set: left alone, pyarrow makes 16-byte keys.
    kms = _ObservingKms(ring)
    factory = pqe.CryptoFactory(lambda _config: kms)
    config = pqe.EncryptionConfiguration(
        footer_key=FOOTER_KEY_ID, uniform_encryption=True, double_wrapping=False
    )
    pq.write_table(
        sample_table(), tmp_path / "default.parquet",
        encryption_properties=factory.file_encryption_properties(pqe.KmsConnectionConfig(), config),
    )
    assert kms.sizes == [16]


def test_unwrap_is_bound_to_the_key_identifier(ring: TenantKeyRing) -> None:
    kms = TenantParquetKms(ring)
    wrapped = kms.wrap_key(bytes(32), FOOTER_KEY_ID)
    assert kms.unwrap_key(wrapped, FOOTER_KEY_ID) == bytes(32)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_key(wrapped, "another-key")


def test_files_stay_readable_after_rotation(ring: TenantKeyRing, tmp_path: Path) -> None:
    before = write(ring, tmp_path / "before.parquet")
    rotated = ring.rotated()
    after = write(rotated, tmp_path / "after.parquet")
    assert read(rotated, before).equals(sample_table())
    assert read(rotated, after).equals(sample_table())
    [material] = key_materials(after)
    assert TenantKeyRing.key_id_of(base64.b64decode(str(material["wrappedDEK"]))) == (
        rotated.primary_key_id
    )


def test_tampered_file_is_refused(ring: TenantKeyRing, tmp_path: Path) -> None:
    path = write(ring, tmp_path / "data.parquet")
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01  # inside the first encrypted column chunk
    path.write_bytes(bytes(data))
    with pytest.raises(OSError, match="Failed decryption"):
        read(ring, path)
