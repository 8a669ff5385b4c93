"""Dataset build errors: each names what is wrong with the input, never a value from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.errors import Conflict, InvalidInput, NotFound

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


class NotParquet(DatasetError):
    """An upload declared Parquet whose bytes are something else (a ZIP archive, text...)."""

    slug = "dataset-not-parquet"


class EncryptedParquet(DatasetError):
    """Parquet encrypted by someone else: not readable here, and not needed."""

    slug = "dataset-encrypted-parquet"


class BadParquet(DatasetError):
    slug = "dataset-bad-parquet"


class UnsupportedColumnType(DatasetError):
    """A Parquet column of a type no dataset column can hold (lists, structs, binary...)."""

    slug = "dataset-column-type"


class WrongDelimiter(DatasetError):
    """The file reads as one column, but another common delimiter splits it evenly."""

    slug = "dataset-wrong-delimiter"

    def __init__(self, detail: str, *, delimiter: str, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint)
        self.delimiter = delimiter


class BuildCancelled(Conflict):
    """The build was cancelled; nothing was written."""

    slug = "build-cancelled"
    title = "Build cancelled"


class UploadNotFound(NotFound):
    pass


class DatasetNotFound(NotFound):
    pass


class VersionNotFound(NotFound):
    pass


class WrongOffset(Conflict):
    """A chunk sent for an offset other than the one the upload resumes from."""

    slug = "upload-offset"
    title = "Wrong upload offset"

    def __init__(self, detail: str, *, expected_offset: int, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint)
        self.expected_offset = expected_offset


class UploadTooLarge(InvalidInput):
    status = 413
    slug = "upload-too-large"
    title = "Upload too large"


class UploadNotReceiving(Conflict):
    """The upload is complete or aborted: no more chunks, or not yet complete for a build."""

    slug = "upload-state"


class BadUpload(InvalidInput):
    """A file name, format, size or empty chunk the upload cannot take."""

    slug = "upload-invalid"


class DatasetExists(Conflict):
    slug = "dataset-exists"


class BadDatasetName(InvalidInput):
    slug = "dataset-name"


class DeleteNotConfirmed(InvalidInput):
    slug = "dataset-delete-not-confirmed"


class RecoveryWindowPassed(Conflict):
    slug = "dataset-recovery-window"


class DatasetLocked(Conflict):
    """The dataset is locked against builds ("prevent build")."""

    slug = "dataset-locked"
    title = "Dataset locked against builds"


class BuildRunning(Conflict):
    slug = "build-running"


class BuildNotRunning(Conflict):
    slug = "build-not-running"
