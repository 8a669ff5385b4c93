"""strongroom count, cube, sql, preview and selection ...: analysis through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.client.errors import REFUSED, ClientError
from strongroom.cli.client.http import Api
from strongroom.cli.client.output import JsonOption, dict_table, fields, note, show, table

selection_app = typer.Typer(help="Saved selections: list, save (a new version), show.",
                            no_args_is_help=True)

SpecArgument = Annotated[Path, typer.Argument(
    help="JSON file with the request (see docs/user-guide.md).", exists=True, dir_okay=False,
    readable=True)]


def read_json(path: Path) -> Any:
    """A JSON document from a file, or one clear error saying where it is broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ClientError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}", exit_code=REFUSED) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}", exit_code=REFUSED) from None


def read_object(path: Path, *required: str) -> dict[str, Any]:
    document = read_json(path)
    if not isinstance(document, dict):
        raise ClientError(f"{path} must hold a JSON object", exit_code=REFUSED)
    missing = [key for key in required if key not in document]
    if missing:
        raise ClientError(f"{path} has no {', '.join(repr(m) for m in missing)}",
                          exit_code=REFUSED)
    return document


def _rows(columns: list[str], rows: list[list[Any]], truncated: bool, masked: list[str]) -> str:
    text = table(columns, rows) if columns else "no columns"
    notes = []
    if not rows:
        notes.append("no rows")
    if truncated:
        notes.append("truncated at the row limit")
    if masked:
        notes.append(f"masked (personal data): {', '.join(masked)}")
    return "\n".join([text, *(f"({n})" for n in notes)])


def _cube_text(cube: dict[str, Any]) -> str:
    dimensions = list(cube.get("dimensions") or [])
    measures = list(cube.get("measures") or [])
    rows = [[*cell.get("key", []), *((cell.get("values") or {}).get(m) for m in measures)]
            for cell in cube.get("cells") or []]
    parts = [table([*dimensions, *measures], rows) if rows else "no cells"]
    suppressed = cube.get("suppressed_cells") or 0
    if suppressed:
        parts.append(f"({suppressed} cell(s) suppressed: fewer than "
                     f"{cube.get('min_cell_count')} records)")
    parts.append(f"(dataset {cube.get('dataset')}, version {cube.get('version')})")
    return "\n".join(parts)


def count(selection_file: SpecArgument, as_json: JsonOption = False) -> None:
    """Count the records a selection picks: the file holds {"dataset", "selection"}."""
    body = read_object(selection_file, "dataset")
    with Api.from_credentials() as api:
        answer = api.post("/count", body)
    show(answer, as_json, lambda a: table(["DATASET", "VERSION", "COUNT"],
                                          [[a.get("dataset"), a.get("version"), a.get("count")]]))


def cube(spec_file: SpecArgument, as_json: JsonOption = False) -> None:
    """Compute a cube (one to three dimensions, measures); small cells are suppressed."""
    body = read_object(spec_file, "dataset")
    with Api.from_credentials() as api:
        answer = api.post("/cubes", body)
    show(answer, as_json, _cube_text)


def sql(
    query: Annotated[str, typer.Argument(help="One read-only SELECT over your datasets.")],
    row_limit: Annotated[
        int | None, typer.Option("--row-limit", min=1, help="At most this many rows "
                                 "(the server caps it too).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one read-only SELECT; each dataset NAME is the table ds_NAME (its newest version)."""
    with Api.from_credentials() as api:
        answer = api.post("/sql", {"sql": query, "row_limit": row_limit})
    show(answer, as_json, lambda a: _rows(a.get("columns") or [], a.get("rows") or [],
                                          bool(a.get("truncated")), []))


def preview(
    dataset: Annotated[str, typer.Argument(help="The dataset's name.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Rows to show.")] = 10,
    selection_file: Annotated[
        Path | None, typer.Option("--selection", help="JSON file with a selection object to "
                                  "preview only its records.", exists=True, dir_okay=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a few rows of a dataset; personal columns are masked unless your role allows."""
    selection = read_json(selection_file) if selection_file is not None else None
    with Api.from_credentials() as api:
        answer = api.post("/preview", {"dataset": dataset, "selection": selection,
                                       "limit": limit})
    show(answer, as_json, lambda a: _rows(a.get("columns") or [], a.get("rows") or [], False,
                                          a.get("masked") or []))


# -- saved selections ---------------------------------------------------------------------------

_SELECTION_COLUMNS = ("name", "dataset", "version", "id", "created_at", "updated_at")


def _find_selection(api: Api, name: str) -> dict[str, Any] | None:
    listed: list[dict[str, Any]] = api.get("/selections")
    for saved in listed:
        if saved.get("name") == name or saved.get("id") == name:
            return saved
    return None


@selection_app.command("list")
def selection_list(as_json: JsonOption = False) -> None:
    """List your tenant's saved selections."""
    with Api.from_credentials() as api:
        listed = api.get("/selections")
    show(listed, as_json, lambda rows: dict_table(rows, _SELECTION_COLUMNS, "no saved selections"))


@selection_app.command("save")
def selection_save(
    name: Annotated[str, typer.Argument(help="The selection's name.")],
    selection_file: Annotated[Path, typer.Argument(
        help='JSON file: {"dataset", "selection"}.', exists=True, dir_okay=False)],
    as_json: JsonOption = False,
) -> None:
    """Save a selection under a name; saving an existing name adds a version."""
    body = read_object(selection_file, "dataset", "selection")
    with Api.from_credentials() as api:
        existing = _find_selection(api, name)
        if existing is None:
            saved = api.post("/selections", {"name": name, "dataset": body["dataset"],
                                             "selection": body["selection"]})
        else:
            if existing.get("dataset") not in (None, body["dataset"]):
                raise ClientError(f"selection {name!r} is over dataset "
                                  f"{existing.get('dataset')!r}, not {body['dataset']!r}",
                                  exit_code=REFUSED)
            saved = api.put(f"/selections/{existing['id']}", {"selection": body["selection"]})
    show(saved, as_json, lambda s: fields([(k, s.get(k)) for k in _SELECTION_COLUMNS if k in s]))


@selection_app.command("show")
def selection_show(
    name: Annotated[str, typer.Argument(help="The selection's name (or id).")],
    as_json: JsonOption = False,
) -> None:
    """Show a saved selection: its latest version and the selection itself."""
    with Api.from_credentials() as api:
        found = _find_selection(api, name)
        if found is None:
            raise ClientError(f"there is no saved selection named {name!r}", exit_code=REFUSED)
        saved = api.get(f"/selections/{found['id']}")

    def render(s: dict[str, Any]) -> str:
        head = fields([(k, s.get(k)) for k in _SELECTION_COLUMNS if k in s])
        return head + "\n\n" + json.dumps(s.get("selection"), indent=2, ensure_ascii=False)

    show(saved, as_json, render)
    if not as_json and "selection" not in saved:
        note("the server did not return the selection itself")
