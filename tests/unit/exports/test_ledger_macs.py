"""The bulk HMAC behind the subject ledger equals the one-at-a-time HMAC, for any key."""

from __future__ import annotations

import secrets

import pytest

from strongroom.crypto.macs import MacKey
from strongroom.exports.velocity import SUBJECT_DOMAIN, subject_digests


@pytest.mark.parametrize("key_size", [16, 32, 64, 65, 200])
def test_bulk_digests_equal_single_macs(key_size: int) -> None:
    key = MacKey(secrets.token_bytes(key_size))
    values = [b"", b"1", b"42", "Zoë".encode(), secrets.token_bytes(300)]
    bulk = list(key.digests("some-domain", values))
    assert bulk == [bytes.fromhex(key.mac("some-domain", v)) for v in values]
    assert list(key.digests("some-domain", values, 8)) == [d[:8] for d in bulk]
    assert list(key.digests("other-domain", values)) != bulk


def test_subject_digests_are_distinct_truncated_macs() -> None:
    key = MacKey(secrets.token_bytes(32))
    packed = subject_digests(key, ["1", "2", "2", "3", "1"])
    entries = {packed[i : i + 8] for i in range(0, len(packed), 8)}
    assert len(packed) == 24
    assert entries == {bytes.fromhex(key.mac(SUBJECT_DOMAIN, v.encode()))[:8]
                       for v in ("1", "2", "3")}
    assert subject_digests(key, []) == b""
