"""Request and response bodies of the upload, dataset and version routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt

from strongroom.datasets.build import ColumnType
from strongroom.web.api.schemas import Strict

# Column names as the build reads them from a header: at most this long, this many listed.
COLUMN_NAME_MAX = 200
COLUMNS_MAX = 2_000
ColumnName = Annotated[str, Field(min_length=1, max_length=COLUMN_NAME_MAX)]


class CsvOptionsIn(Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    header: StrictBool = True
    encoding: Literal["utf-8", "latin-1"] = "utf-8"


class UploadCreate(Strict):
    filename: str = Field(min_length=1, max_length=255,
                          description="Metadata only: never used as a path, stored sealed")
    format: Literal["csv", "parquet"]
    size: StrictInt | None = Field(default=None, ge=1, le=2**62,
                                   description="The whole file's size in bytes, if known")
    csv: CsvOptionsIn | None = None


class UploadOut(BaseModel):
    id: str
    format: str
    status: str
    received_bytes: int = Field(description="The offset to send the next chunk at")
    max_bytes: int
    declared_size: int | None
    created_at: dt.datetime


class DatasetCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    key_column: str | None = Field(default=None, min_length=1, max_length=COLUMN_NAME_MAX)


class DatasetDelete(Strict):
    confirm_name: str = Field(min_length=1, max_length=100,
                              description="The dataset's name, typed back")


class BuildCreate(Strict):
    upload_id: str = Field(min_length=1, max_length=64)
    types: dict[ColumnName, ColumnType] | None = Field(
        default=None, max_length=COLUMNS_MAX,
        description="Column name to type, over what the build infers",
    )
    key_column: str | None = Field(default=None, min_length=1, max_length=COLUMN_NAME_MAX)
    personal: list[ColumnName] | None = Field(default=None, max_length=COLUMNS_MAX,
                                       description="Columns holding personal data")


class ColumnOut(BaseModel):
    name: str
    type: str
    personal: bool


class VersionOut(BaseModel):
    id: str
    dataset_id: str
    number: int
    status: str = Field(description="building, ready, failed or cancelled")
    progress_rows: int
    progress_bytes: int
    percent: float | None = Field(description="Share of the upload read so far, 0-100")
    mib_per_second: float | None
    row_count: int | None
    rejected_count: int | None
    size: int | None = Field(description="Bytes of the encrypted Parquet file, once ready")
    columns: list[ColumnOut]
    key_column: str | None
    report: dict[str, Any]
    built_by: str | None = Field(description="The id of the user who started the build")
    started_at: dt.datetime
    finished_at: dt.datetime | None


class DatasetOut(BaseModel):
    id: str
    name: str
    key_column: str | None
    build_locked: bool
    created_by: str | None = Field(description="The id of the user who created the dataset")
    created_at: dt.datetime
    deleted_at: dt.datetime | None
    purge_after: dt.datetime | None
    latest_version: VersionOut | None = Field(description="The newest version, whatever its "
                                              "status")


class DatasetDetail(DatasetOut):
    versions: list[VersionOut]
