"""The generated data set, built once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.unit.analysis.support import Data, generated_data


@pytest.fixture(scope="session")
def data() -> Iterator[Data]:
    built = generated_data()
    yield built
    built.con.close()
