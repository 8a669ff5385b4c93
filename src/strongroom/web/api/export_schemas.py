"""Request and response bodies of the export, quota and export-limit routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from strongroom.web.api.schemas import Strict

COLUMN_NAME_MAX = 200
COLUMNS_MAX = 2_000
ColumnName = Annotated[str, Field(min_length=1, max_length=COLUMN_NAME_MAX)]
LimitValue = Annotated[StrictInt | None, Field(default=None, ge=0, le=2**53)]


class TransformIn(BaseModel):
    """``{"kind": ..., **params}``; the parameters of each kind are in the user guide."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["keep", "drop", "mask", "pseudonym", "token", "generalise"]


class ColumnIn(Strict):
    name: ColumnName
    transform: TransformIn | None = Field(default=None, description="Absent: keep the column")


class AnonymousIn(Strict):
    quasi_identifiers: list[ColumnName] = Field(min_length=1, max_length=100)
    k: StrictInt | None = Field(default=None, le=1_000_000,
                                description="Smallest class size (default: tenant minimum, 5)")
    sensitive: ColumnName | None = None
    l: StrictInt | None = Field(default=None, le=1_000_000)  # noqa: E741 (l-diversity)


class ExportCreate(Strict):
    dataset: str = Field(min_length=1, max_length=100)
    selection: dict[str, Any] | None = None
    selection_id: str | None = Field(default=None, min_length=1, max_length=64)
    format: Literal["csv", "parquet"] = "csv"
    columns: list[ColumnIn] = Field(min_length=1, max_length=COLUMNS_MAX)
    anonymous: AnonymousIn | None = None


class ExportOut(BaseModel):
    id: str
    status: Literal["ready", "downloaded", "expired"]
    format: str
    rows: int
    bytes: int
    sha256: str
    created_at: dt.datetime
    expires_at: dt.datetime
    downloaded_at: dt.datetime | None
    download_url: str | None = Field(
        description="Only in the answer that created the export: the single-use link")
    anonymity: dict[str, Any] | None


class AllowanceOut(BaseModel):
    limit: int
    used: int
    remaining: int


class WindowQuotaOut(BaseModel):
    rows: AllowanceOut
    bytes: AllowanceOut
    exports: AllowanceOut
    subjects: AllowanceOut


class ScopeQuotaOut(BaseModel):
    hour: WindowQuotaOut = Field(description="The last 60 minutes, rolling")
    day: WindowQuotaOut = Field(description="The last 24 hours, rolling")


class QuotaOut(BaseModel):
    user: ScopeQuotaOut
    tenant: ScopeQuotaOut
    refusals_last_hour: int
    as_of: dt.datetime


class LimitsIn(Strict):
    """Each limit a number, or null for "as high as the level above allows"."""

    rows_per_hour: LimitValue = None
    rows_per_day: LimitValue = None
    bytes_per_hour: LimitValue = None
    bytes_per_day: LimitValue = None
    exports_per_hour: LimitValue = None
    exports_per_day: LimitValue = None
    subjects_per_hour: LimitValue = None
    subjects_per_day: LimitValue = None


class ExportLimitsUpdate(Strict):
    tenant: LimitsIn = Field(default_factory=LimitsIn,
                             description="For the whole tenant, every user together")
    user: LimitsIn = Field(default_factory=LimitsIn, description="For each user alone")


class LimitsOut(BaseModel):
    rows_per_hour: int
    rows_per_day: int
    bytes_per_hour: int
    bytes_per_day: int
    exports_per_hour: int
    exports_per_day: int
    subjects_per_hour: int
    subjects_per_day: int


class LimitSettingsOut(BaseModel):
    rows_per_hour: int | None
    rows_per_day: int | None
    bytes_per_hour: int | None
    bytes_per_day: int | None
    exports_per_hour: int | None
    exports_per_day: int | None
    subjects_per_hour: int | None
    subjects_per_day: int | None


class EffectiveLimitsOut(BaseModel):
    tenant: LimitsOut
    user: LimitsOut


class ExportLimitsOut(BaseModel):
    caps: LimitsOut = Field(description="Set by the operator; limits cannot go above them")
    tenant: LimitSettingsOut
    user: LimitSettingsOut
    effective: EffectiveLimitsOut
