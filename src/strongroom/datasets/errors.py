"""Dataset build errors: each names what is wrong with the input, never a value from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from strongroom.datasets.build import BuildReport


class DatasetError(InvalidInput):
    """The upload cannot be built into a dataset (answered 422)."""

    slug = "dataset-invalid"
    title = "Dataset cannot be built"


class EmptyFile(DatasetError):
    slug = "dataset-empty"


class NoDataRows(DatasetError):
    """A header and nothing else, or every data row rejected (see ``report``)."""

    slug = "dataset-no-rows"

    def __init__(
        self, detail: str, *, report: BuildReport | None = None, hint: str | None = None
    ) -> None:
        super().__init__(detail, hint=hint)
        self.report = report


class BadEncoding(DatasetError):
    slug = "dataset-encoding"


class TooManyColumns(DatasetError):
    slug = "dataset-too-many-columns"


class RowTooLong(DatasetError):
    slug = "dataset-row-too-long"


class BadOverride(DatasetError):
    slug = "dataset-bad-override"


class BadCsv(DatasetError):
    slug = "dataset-bad-csv"


class BuildCancelled(Conflict):
    """The build was cancelled; nothing was written."""

    slug = "build-cancelled"
    title = "Build cancelled"
