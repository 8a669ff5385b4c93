"""strongroom dataset ...: upload (resumable), build, list, show, delete, restore, lock."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.client import transfer
from strongroom.cli.client.errors import REFUSED, ClientError
from strongroom.cli.client.http import Api
from strongroom.cli.client.output import (
    JsonOption,
    fields,
    interactive,
    note,
    print_json,
    show,
    table,
)
from strongroom.cli.client.progress import progress_bar

app = typer.Typer(help="Upload, build, list, show, delete and restore your tenant's datasets.",
                  no_args_is_help=True)

MIB = 1024 * 1024
DEFAULT_CHUNK_MIB = 8
MAX_CHUNK_MIB = 64


class FileFormat(enum.StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class Encoding(enum.StrEnum):
    UTF8 = "utf-8"
    LATIN1 = "latin-1"


NameArgument = Annotated[str, typer.Argument(help="The dataset's name.")]
TypeOption = Annotated[
    list[str] | None,
    typer.Option("--type", help="Override a column's type: COLUMN=TYPE (repeatable), e.g. "
                 "age=integer, joined=date."),
]
PersonalOption = Annotated[
    list[str] | None,
    typer.Option("--personal", help="Mark a column as personal data (repeatable); preview "
                 "masks it."),
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="The key column (one row per data subject).")
]


# -- names --------------------------------------------------------------------------------------


class NoSuchDataset(ClientError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=REFUSED)


def find_dataset(api: Api, name: str, *, deleted: bool = False) -> dict[str, Any]:
    """The dataset called ``name`` (or with that id), among live or among deleted ones."""
    listed: list[dict[str, Any]] = api.get("/datasets", {"deleted": "true"} if deleted else None)
    found = [d for d in listed if d.get("name") == name] or [
        d for d in listed if d.get("id") == name
    ]
    if not found:
        where = "deleted datasets" if deleted else "datasets"
        raise NoSuchDataset(f"there is no dataset named {name!r} among your tenant's {where}")
    # Among deleted ones the same name can recur; the most recently deleted is meant.
    return max(found, key=lambda d: str(d.get("deleted_at") or ""))


def _types(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    types: dict[str, str] = {}
    for pair in pairs:
        column, sep, kind = pair.rpartition("=")
        if not sep or not column or not kind:
            raise ClientError(f"--type takes COLUMN=TYPE, not {pair!r}", exit_code=REFUSED)
        types[column] = kind.strip()
    return types


def _build_body(upload_id: str, types: list[str] | None, personal: list[str] | None,
                key: str | None) -> dict[str, Any]:
    return {"upload_id": upload_id, "types": _types(types), "key_column": key,
            "personal": list(personal) if personal else None}


# -- rendering ----------------------------------------------------------------------------------


def _dataset_rows(datasets: list[dict[str, Any]], deleted: bool) -> str:
    if not datasets:
        return "no deleted datasets" if deleted else "no datasets"
    headers = ["NAME", "VERSION", "STATUS", "ROWS", "KEY", "LOCKED"]
    headers += ["DELETED", "PURGE AFTER"] if deleted else ["CREATED"]
    rows = []
    for d in datasets:
        latest = d.get("latest_version") or {}
        row = [d.get("name"), latest.get("number"), latest.get("status"),
               latest.get("row_count"), d.get("key_column"), d.get("build_locked")]
        row += [d.get("deleted_at"), d.get("purge_after")] if deleted else [d.get("created_at")]
        rows.append(row)
    return table(headers, rows)


def _columns(columns: list[dict[str, Any]]) -> str:
    return table(["COLUMN", "TYPE", "PERSONAL"],
                 [[c.get("name"), c.get("type"), c.get("personal")] for c in columns])


def _show_dataset(dataset: dict[str, Any]) -> str:
    parts = [fields([(k, dataset.get(k)) for k in (
        "name", "id", "key_column", "build_locked", "created_by", "created_at", "deleted_at",
        "purge_after")])]
    versions = dataset.get("versions") or []
    if versions:
        parts.append(table(
            ["VERSION", "STATUS", "ROWS", "REJECTED", "BYTES", "BUILT BY", "STARTED", "FINISHED"],
            [[v.get("number"), v.get("status"), v.get("row_count"), v.get("rejected_count"),
              v.get("size"), v.get("built_by"), v.get("started_at"), v.get("finished_at")]
             for v in versions],
        ))
    latest = dataset.get("latest_version") or {}
    if latest.get("columns"):
        parts.append(f"columns of version {latest.get('number')}:\n"
                     + _columns(latest["columns"]))
    return "\n\n".join(parts)


def report_text(version: dict[str, Any]) -> str:
    """The build report: rows loaded, rows rejected with their row numbers and reasons."""
    report = version.get("report") or {}
    pairs = [("version", version.get("number")), ("status", version.get("status")),
             ("rows loaded", report.get("rows_loaded", version.get("row_count"))),
             ("rows rejected", report.get("rows_rejected", version.get("rejected_count"))),
             ("size", version.get("size")), ("key column", version.get("key_column"))]
    error = report.get("error")
    if isinstance(error, dict):
        pairs.append(("error", error.get("detail")))
    parts = [fields(pairs)]
    if version.get("columns"):
        parts.append(_columns(version["columns"]))
    rejections = report.get("rejections") or []
    if rejections:
        lines = ["rejected rows:"]
        lines += [f"  row {r.get('row')}: {r.get('reason')}" for r in rejections]
        if report.get("rejections_truncated"):
            lines.append(f"  ... and {report['rows_rejected'] - len(rejections)} more")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def finish_build(api: Api, version: dict[str, Any], *, wait: bool, as_json: bool,
                 extra: dict[str, Any] | None = None) -> None:
    """Follow the build (with ``wait``), print its report; a failed build exits 1."""
    if wait:
        with progress_bar("building", 100, enabled=interactive(as_json)) as update:
            version = transfer.follow_build(api, version, update)
    if as_json:
        print_json({**(extra or {}), "version": version})
    else:
        typer.echo(report_text(version))
        if not wait:
            note(f"the build runs on the server; its progress: strongroom dataset show "
                 f"{(extra or {}).get('dataset', {}).get('name', 'NAME')}")
    if version.get("status") in ("failed", "cancelled"):
        error = (version.get("report") or {}).get("error") or {}
        raise ClientError(f"the build {version['status']}"
                          + (f": {error['detail']}" if error.get("detail") else ""),
                          exit_code=REFUSED)


# -- commands -----------------------------------------------------------------------------------


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="The CSV or Parquet file to upload.", exists=True,
                                         dir_okay=False, readable=True)],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset to upload into "
                                         "(created if missing).")],
    file_format: Annotated[
        FileFormat | None,
        typer.Option("--format", help="csv or parquet (default: from the file name)."),
    ] = None,
    delimiter: Annotated[
        str, typer.Option("--delimiter", help="CSV field delimiter (one character; 'tab' for a "
                          "tab).")
    ] = ",",
    encoding: Annotated[
        Encoding, typer.Option("--encoding", help="CSV text encoding.")
    ] = Encoding.UTF8,
    no_header: Annotated[
        bool, typer.Option("--no-header", help="The CSV's first line is data, not names.")
    ] = False,
    chunk_mib: Annotated[
        int, typer.Option("--chunk-mib", min=1, max=MAX_CHUNK_MIB,
                          help="Chunk size in MiB; a dropped connection costs at most one.")
    ] = DEFAULT_CHUNK_MIB,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue this upload (its id) of the same "
                                 "file, from what the server already holds.")
    ] = None,
    build: Annotated[
        bool, typer.Option("--build", help="Build a new version from the upload and follow it.")
    ] = False,
    types: TypeOption = None,
    personal: PersonalOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a file in chunks, resuming after dropped connections; with --build, build it."""
    fmt = file_format or (FileFormat.PARQUET if file.suffix.lower() in (".parquet", ".pq")
                          else FileFormat.CSV)
    separator = "\t" if delimiter.lower() in ("tab", "\\t") else delimiter
    if len(separator) != 1:
        raise ClientError("--delimiter takes one character", exit_code=REFUSED)
    size = file.stat().st_size
    with Api.from_credentials() as api:
        try:
            target = find_dataset(api, dataset)
        except NoSuchDataset:
            target = api.post("/datasets", {"name": dataset, "key_column": key})
            note(f"created dataset {dataset}")
        if resume is None:
            csv = None if fmt is FileFormat.PARQUET else {
                "delimiter": separator, "quote": '"', "header": not no_header,
                "encoding": encoding.value,
            }
            # The name is metadata for the catalog, never a path on the server.
            started = api.post("/uploads", {"filename": file.name, "format": fmt.value,
                                            "size": size, "csv": csv})
        else:
            started = api.get(f"/uploads/{resume}")
            if started.get("status") != "receiving":
                raise ClientError(f"upload {resume} is {started.get('status')}, not receiving: "
                                  "there is nothing to resume", exit_code=REFUSED)
        again = (f"continue with: strongroom dataset upload {file} --dataset {dataset} "
                 f"--resume {started['id']}")
        try:
            with progress_bar(f"uploading {file.name}", size, enabled=interactive(as_json),
                              in_bytes=True) as update:
                sent, retries = transfer.send_file(api, started, file, chunk_mib * MIB,
                                                   lambda n: update(n, None))
        except KeyboardInterrupt:
            note(f"interrupted; the server keeps what it received: {again}")
            raise
        except ClientError as exc:
            raise ClientError(f"{exc.message}; the server keeps what it received: {again}",
                              exit_code=exc.exit_code) from None
        if retries:
            note(f"the connection failed {retries} time(s); the upload resumed each time")
        done = transfer.complete(api, str(sent["id"]))
        if api.rate_limit_waits:
            note(f"rate-limited {api.rate_limit_waits} time(s); waited as the server asked")
        extra = {"dataset": target, "upload": done}
        if build:
            version = transfer.start_build(api, str(target["id"]),
                                           _build_body(str(done["id"]), types, personal, key))
            finish_build(api, version, wait=True, as_json=as_json, extra=extra)
            return
    show(extra, as_json, lambda e: fields([
        ("dataset", e["dataset"].get("name")), ("upload", e["upload"].get("id")),
        ("bytes", e["upload"].get("received_bytes")), ("status", e["upload"].get("status")),
    ]))
    if not as_json:
        note(f"build it: strongroom dataset build {dataset} --upload {done['id']} --wait")


@app.command("build")
def build_(
    name: NameArgument,
    upload_id: Annotated[str, typer.Option("--upload", help="The completed upload to build.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the build until it is ready or failed.")
    ] = False,
    types: TypeOption = None,
    personal: PersonalOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build a new version of a dataset from a completed upload."""
    with Api.from_credentials() as api:
        dataset = find_dataset(api, name)
        version = api.post(f"/datasets/{dataset['id']}/builds",
                           _build_body(upload_id, types, personal, key))
        finish_build(api, version, wait=wait, as_json=as_json, extra={"dataset": dataset})


@app.command("list")
def list_(
    deleted: Annotated[
        bool, typer.Option("--deleted", help="List deleted datasets awaiting purge instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List your tenant's datasets with their latest version."""
    with Api.from_credentials() as api:
        datasets = api.get("/datasets", {"deleted": "true"} if deleted else None)
    show(datasets, as_json, lambda d: _dataset_rows(d, deleted))


@app.command("show")
def show_(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show a dataset: its versions, and the columns of its latest version."""
    with Api.from_credentials() as api:
        dataset = api.get(f"/datasets/{find_dataset(api, name)['id']}")
    show(dataset, as_json, _show_dataset)


def _ask_name(name: str) -> str:
    """The name typed back on stdin (a terminal or a pipe); the prompt goes to stderr."""
    typer.echo(f"Type the dataset's name ({name}) to delete it: ", err=True, nl=False)
    answer = sys.stdin.readline()
    typer.echo("", err=True)
    return answer.rstrip("\r\n")


@app.command("delete")
def delete(
    name: NameArgument,
    confirm: Annotated[
        str | None, typer.Option("--confirm", help="The dataset's name again, for scripts "
                                 "(otherwise you are asked to type it).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a dataset (restorable until its purge date); you type its name back."""
    with Api.from_credentials() as api:
        dataset = find_dataset(api, name)
        typed = confirm if confirm is not None else _ask_name(name)
        if typed != dataset["name"]:
            raise ClientError("the name typed back does not match; nothing was deleted",
                              exit_code=REFUSED)
        deleted = api.post(f"/datasets/{dataset['id']}/delete", {"confirm_name": typed})
    show(deleted, as_json, lambda d: f"deleted {d.get('name')}; restorable until "
         f"{d.get('purge_after')} with: strongroom dataset restore {d.get('name')}")


@app.command("restore")
def restore(name: NameArgument, as_json: JsonOption = False) -> None:
    """Restore a deleted dataset within its recovery window."""
    with Api.from_credentials() as api:
        dataset = find_dataset(api, name, deleted=True)
        restored = api.post(f"/datasets/{dataset['id']}/restore")
    show(restored, as_json, lambda d: f"restored {d.get('name')}")


@app.command("lock")
def lock(name: NameArgument, as_json: JsonOption = False) -> None:
    """Prevent builds of a dataset until it is unlocked."""
    with Api.from_credentials() as api:
        locked = api.post(f"/datasets/{find_dataset(api, name)['id']}/lock")
    show(locked, as_json, lambda d: f"locked {d.get('name')} against builds")


@app.command("unlock")
def unlock(name: NameArgument, as_json: JsonOption = False) -> None:
    """Allow builds of a dataset again."""
    with Api.from_credentials() as api:
        unlocked = api.post(f"/datasets/{find_dataset(api, name)['id']}/unlock")
    show(unlocked, as_json, lambda d: f"unlocked {d.get('name')}")
