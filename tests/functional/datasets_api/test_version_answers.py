"""How a version's progress is reported: percent of the upload read, and MiB/s."""

from __future__ import annotations

import datetime as dt

from strongroom.datasets.models import DatasetVersion, VersionStatus
from strongroom.db import utcnow
from strongroom.web.api.datasets import version_out

MIB = 1024 * 1024


def _version(status: VersionStatus, progress_bytes: int, seconds_ago: float,
             finished: bool = False) -> DatasetVersion:
    started = utcnow() - dt.timedelta(seconds=seconds_ago)
    return DatasetVersion(
        id="a" * 32, tenant_id="t" * 32, dataset_id="d" * 32, number=1, status=status.value,
        upload_id="u" * 32, progress_rows=10, progress_bytes=progress_bytes,
        started_at=started, finished_at=started + dt.timedelta(seconds=4) if finished else None,
    )


def test_a_running_build_reports_the_share_of_the_upload_read_and_its_rate() -> None:
    out = version_out(_version(VersionStatus.BUILDING, 50 * MIB, 100), upload_size=200 * MIB)
    assert out.percent == 25.0
    # 50 MiB over at least the 100 s since it started (the clock only moves on).
    assert out.mib_per_second is not None
    assert 0 < out.mib_per_second <= 0.5


def test_a_finished_build_is_rated_over_its_own_duration() -> None:
    out = version_out(_version(VersionStatus.READY, 8 * MIB, 100, finished=True),
                      upload_size=8 * MIB)
    assert (out.percent, out.mib_per_second) == (100.0, 2.0)


def test_nothing_read_yet_or_an_unknown_upload_size_reports_no_figures() -> None:
    fresh = version_out(_version(VersionStatus.BUILDING, 0, 1), upload_size=10)
    assert (fresh.percent, fresh.mib_per_second) == (0.0, None)
    unknown = version_out(_version(VersionStatus.BUILDING, 5, 1), upload_size=None)
    assert unknown.percent is None


def test_the_percentage_never_passes_100_while_building() -> None:
    # Clamped, whatever the counters say: a progress bar past 100 % helps no one.
    out = version_out(_version(VersionStatus.BUILDING, 120, 1), upload_size=100)
    assert out.percent == 100.0
