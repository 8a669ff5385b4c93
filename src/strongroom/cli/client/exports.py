"""strongroom export create|list|download and strongroom quota.

The server shows an export's single-use download link once, in the answer that
creates it. The client keeps the link's key in ``downloads.json`` beside the
credentials (0600, refused if others can read it) so that ``export download``
can fetch it later, and forgets it once used. A download is written to a
temporary file next to ``-o``, checked against the size and SHA-256 the server
recorded, and only then renamed into place: a partial or altered file never
carries the name asked for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import typer

from strongroom.cli.client import config
from strongroom.cli.client.analysis import SpecArgument, read_object
from strongroom.cli.client.errors import FAILED, REFUSED, ClientError
from strongroom.cli.client.http import Api
from strongroom.cli.client.output import (
    JsonOption,
    dict_table,
    fields,
    interactive,
    note,
    print_json,
    show,
    table,
)
from strongroom.cli.client.progress import progress_bar

app = typer.Typer(help="Export selections with privacy transforms; list and download exports.",
                  no_args_is_help=True)

DOWNLOADS_FILE = "downloads.json"
PIECE = 1024 * 1024
_EXPORT_COLUMNS = ("id", "status", "format", "rows", "bytes", "created_at", "expires_at",
                   "downloaded_at")

OutputOption = Annotated[Path, typer.Option("-o", "--output", help="The file to write.",
                                            dir_okay=False)]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="export")
    root.command("quota")(quota)


# -- the keys of download links -----------------------------------------------------------------


def _keys_path() -> Path:
    return config.config_dir() / DOWNLOADS_FILE


def kept_links() -> dict[str, Any]:
    data = config.read_private(_keys_path())
    if data is None:
        return {}
    try:
        loaded = json.loads(data)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save_keys(keys: dict[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    # Expired links are of no use; drop them whenever the file is written.
    kept = {k: v for k, v in keys.items() if str(v.get("expires_at") or "9") > now}
    config.write_private(config.private_dir() / DOWNLOADS_FILE,
                         (json.dumps(kept, indent=2, sort_keys=True) + "\n").encode())


def _remember(server: str, export: dict[str, Any]) -> None:
    url = export.get("download_url")
    if not url:
        return
    key = parse_qs(urlsplit(str(url)).query).get("key", [""])[0]
    keys = kept_links()
    keys[str(export["id"])] = {"server": server, "key": key,
                               "expires_at": _utc(export.get("expires_at"))}
    _save_keys(keys)


def _utc(value: Any) -> str | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(
        dt.UTC).isoformat()


def _forget(export_id: str) -> None:
    keys = kept_links()
    if keys.pop(export_id, None) is not None:
        _save_keys(keys)


# -- downloading --------------------------------------------------------------------------------


def download_file(
    api: Api, export: dict[str, Any], key: str, target: Path, as_json: bool
) -> str:
    """Stream the export into a temporary file beside ``target``, verify, rename; its SHA-256."""
    export_id = str(export["id"])
    expected_size = export.get("bytes")
    expected_sha = export.get("sha256")
    target = target.expanduser().absolute()
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    written = 0
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, \
                api.stream(f"/exports/{export_id}/download", {"key": key}) as response, \
                progress_bar(f"downloading {target.name}", expected_size,
                             enabled=interactive(as_json), in_bytes=True) as update:
            for piece in response.iter_bytes(PIECE):
                out.write(piece)
                digest.update(piece)
                written += len(piece)
                update(written, None)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if expected_size is not None and written != expected_size:
            raise ClientError(f"the download ended after {written} of {expected_size} bytes; "
                              f"nothing was written to {target}", exit_code=FAILED)
        if expected_sha and actual != expected_sha:
            raise ClientError(f"the download's SHA-256 {actual} is not the {expected_sha} the "
                              f"server recorded; nothing was written to {target}",
                              exit_code=FAILED)
        temporary.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return actual


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise ClientError(f"{target} exists; pass --overwrite to replace it", exit_code=REFUSED)
    if not target.expanduser().absolute().parent.is_dir():
        raise ClientError(f"there is no directory for {target}", exit_code=REFUSED)


# -- commands -----------------------------------------------------------------------------------


def _export_fields(export: dict[str, Any]) -> str:
    pairs = [(k, export.get(k)) for k in (*_EXPORT_COLUMNS, "sha256")]
    if export.get("anonymity"):
        pairs.append(("anonymity", export["anonymity"]))
    return fields(pairs)


@app.command("create")
def create(
    spec_file: SpecArgument,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also download it now, to this file.",
                                  dir_okay=False)
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the -o file if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export a selection: the file holds {"dataset", "selection", "format", "columns", ...}."""
    body = read_object(spec_file, "dataset", "columns")
    if output is not None:
        _check_target(output, overwrite)
    stored = config.load()
    with Api(stored.server, stored.ca, stored.token) as api:
        export = api.post("/exports", body)
        _remember(api.server, export)
        sha = None
        if output is not None:
            key = kept_links()[str(export["id"])]["key"]
            sha = download_file(api, export, key, output, as_json)
            _forget(str(export["id"]))
    if as_json:
        print_json(export)
    else:
        typer.echo(_export_fields(export))
        if output is None:
            note(f"download it (once, before {export.get('expires_at')}): "
                 f"strongroom export download {export['id']} -o FILE")
        else:
            note(f"wrote {output} (SHA-256 {sha}, as the server recorded)")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List your exports, newest first."""
    with Api.from_credentials() as api:
        exports = api.get("/exports")
    show(exports, as_json, lambda rows: dict_table(rows, _EXPORT_COLUMNS, "no exports"))


@app.command("download")
def download(
    export_id: Annotated[str, typer.Argument(help="The export's id.")],
    output: OutputOption,
    key: Annotated[
        str | None, typer.Option("--key", help="The key of the download link, when it was "
                                 "created elsewhere (default: the one kept at creation).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the -o file if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Download an export once, checked against the SHA-256 the server recorded."""
    _check_target(output, overwrite)
    stored = config.load()
    if key is None:
        kept = kept_links().get(export_id)
        if kept is None:
            raise ClientError(f"no download link kept for export {export_id}: links are shown "
                              "once, to the client that created the export; pass --key",
                              exit_code=REFUSED)
        key = str(kept["key"])
    with Api(stored.server, stored.ca, stored.token) as api:
        export = api.get(f"/exports/{export_id}")
        sha = download_file(api, export, key, output, as_json)
    _forget(export_id)
    result = {"id": export_id, "file": str(output), "bytes": export.get("bytes"),
              "sha256": sha, "verified": True}
    show(result, as_json, lambda r: fields(list(r.items())))


def _quota_text(report: dict[str, Any]) -> str:
    rows = []
    for scope in ("user", "tenant"):
        for window in ("hour", "day"):
            allowances = (report.get(scope) or {}).get(window) or {}
            row: list[Any] = [scope, window]
            for measure in ("rows", "bytes", "exports", "subjects"):
                a = allowances.get(measure) or {}
                row.append(f"{a.get('remaining')} of {a.get('limit')}")
            rows.append(row)
    text = table(["SCOPE", "WINDOW", "ROWS LEFT", "BYTES LEFT", "EXPORTS LEFT",
                  "SUBJECTS LEFT"], rows)
    return (text + f"\n(rolling windows; refusals in the last hour: "
            f"{report.get('refusals_last_hour')})")


def quota(as_json: JsonOption = False) -> None:
    """What you and your tenant may still export in the rolling hour and 24 hours."""
    with Api.from_credentials() as api:
        report = api.get("/quota")
    show(report, as_json, _quota_text)
