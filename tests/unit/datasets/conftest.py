"""Key rings and Parquet crypto for dataset build tests; no database needed."""

from __future__ import annotations

import uuid

import pytest

from strongroom.config import Environment
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import ParquetCrypto


@pytest.fixture
def ring() -> TenantKeyRing:
    return TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex)


@pytest.fixture
def crypto(ring: TenantKeyRing) -> ParquetCrypto:
    return ParquetCrypto(ring)
