"""Request and response bodies of the analysis API: counts, cubes, preview, SQL, selections.

Selections and cube parts are free-form JSON here; :mod:`strongroom.analysis`
checks them against the tenant's schema and names the place of any fault.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field, StrictInt

from strongroom.analysis.queries import PREVIEW_MAX_ROWS
from strongroom.web.api.schemas import Strict

DATASET = Field(min_length=1, max_length=100, description="The dataset's name")
SELECTION_ID = Field(default=None, min_length=1, max_length=64,
                     description="A saved selection's id (its latest version), instead of "
                     "selection")


class CountRequest(Strict):
    dataset: str | None = Field(default=None, min_length=1, max_length=100,
                                description="The dataset's name; optional with selection_id")
    selection: dict[str, Any] | None = None
    selection_id: str | None = SELECTION_ID


class CountOut(BaseModel):
    dataset: str
    version: int
    count: int
    selection_id: str | None = None
    selection_version: int | None = None


class CubeRequest(Strict):
    dataset: str | None = Field(default=None, min_length=1, max_length=100,
                                description="The dataset's name; optional with selection_id")
    selection: dict[str, Any] | None = None
    selection_id: str | None = SELECTION_ID
    dimensions: list[dict[str, Any]] = Field(min_length=1, max_length=3)
    measures: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"fn": "count"}], min_length=1, max_length=10
    )


class CubeCellOut(BaseModel):
    key: list[Any]
    values: dict[str, Any]


class CubeOut(BaseModel):
    dataset: str
    version: int
    dimensions: list[str]
    measures: list[str]
    cells: list[CubeCellOut]
    suppressed_cells: int
    min_cell_count: int = Field(description="Cells counting fewer rows were suppressed "
                                "(1: nothing was suppressed for your role)")


class PreviewRequest(Strict):
    dataset: str | None = Field(default=None, min_length=1, max_length=100,
                                description="The dataset's name; optional with selection_id")
    selection: dict[str, Any] | None = None
    selection_id: str | None = SELECTION_ID
    limit: StrictInt = Field(default=20, ge=1, le=PREVIEW_MAX_ROWS)


class PreviewOut(BaseModel):
    dataset: str
    version: int
    columns: list[str]
    rows: list[list[Any]]
    masked: list[str] = Field(description="Personal columns shown masked for your role")


class SqlRequest(Strict):
    sql: str = Field(min_length=1, max_length=100_000,
                     description="One SELECT over the views ds_<dataset name>")
    row_limit: StrictInt | None = Field(default=None, ge=1,
                                        description="At most the setting sql_row_cap")


class SqlOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class SelectionCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    dataset: str = DATASET
    selection: dict[str, Any]


class SelectionUpdate(Strict):
    selection: dict[str, Any]


class SelectionOut(BaseModel):
    id: str
    name: str
    dataset: str
    version: int
    latest_version: int
    selection: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
