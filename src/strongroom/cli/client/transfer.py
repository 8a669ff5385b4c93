"""Sending a file in chunks that survives dropped connections, and following a build.

The server keeps what it received; after a lost connection (or a 409
``wrong-offset``) the client asks the upload for ``received_bytes`` and carries
on from there, so nothing is sent twice and nothing is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from strongroom.cli.client.errors import ApiError, ClientError
from strongroom.cli.client.http import MAX_RATE_LIMIT_WAIT, Api, ConnectionLost

PIECE = 1024 * 1024
# Waits between consecutive failures without progress; they add up to about two minutes,
# enough for a server restart, before the upload gives up (and says how to resume it).
BACKOFF_SECONDS = (0.5, 1, 2, 4, 8, 15, 15, 15, 15, 15, 15, 15)
MAX_RETRIES = len(BACKOFF_SECONDS)
BUILD_POLL_SECONDS = 0.5
DONE = frozenset({"ready", "failed", "cancelled"})


def _pause(attempt: int) -> None:
    time.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])


def _pieces(source: BinaryIO, offset: int, length: int, sent: Callable[[int], None]
            ) -> Iterator[bytes]:
    source.seek(offset)
    remaining = length
    while remaining > 0:
        piece = source.read(min(PIECE, remaining))
        if not piece:
            raise ClientError("the file became shorter while it was being uploaded")
        remaining -= len(piece)
        yield piece
        sent(offset + length - remaining)


class Retrying:
    """Counts consecutive failures; raises the last one once there have been too many."""

    def __init__(self) -> None:
        self.failures = 0
        self.retried = 0

    def failed(self, exc: ClientError, *, wait: float | None = None) -> None:
        """Count a failure: raise it when there have been too many, else wait and return."""
        self.failures += 1
        if self.failures > MAX_RETRIES:
            raise exc
        if wait is None:
            self.retried += 1
            _pause(self.failures)
        else:
            time.sleep(wait)  # rate-limited: counted by the Api, not as a lost connection

    def succeeded(self) -> None:
        self.failures = 0


def _received(api: Api, upload_id: str, retrying: Retrying) -> int:
    """The bytes the server holds, asked for again until it answers."""
    while True:
        try:
            return int(api.get(f"/uploads/{upload_id}")["received_bytes"])
        except ConnectionLost as exc:
            retrying.failed(exc)


def send_file(
    api: Api, upload: dict[str, Any], path: Path, chunk_bytes: int,
    progress: Callable[[int], None],
) -> tuple[dict[str, Any], int]:
    """Send ``path`` from the upload's ``received_bytes`` on; (the upload, retries made)."""
    upload_id = str(upload["id"])
    size = path.stat().st_size
    offset = int(upload["received_bytes"])
    retrying = Retrying()
    with path.open("rb") as source:
        while offset != size:
            if offset > size:
                raise ClientError(f"the server holds {offset} bytes of this upload, more than "
                                  f"the file's {size}: is it the same file?")
            progress(offset)
            length = min(chunk_bytes, size - offset)
            try:
                upload = api.call(
                    "PUT", f"/uploads/{upload_id}/chunks", params={"offset": offset},
                    content=_pieces(source, offset, length, progress),
                    headers={"content-type": "application/octet-stream",
                             "content-length": str(length)},
                )
            except ConnectionLost as exc:
                retrying.failed(exc)
                offset = _received(api, upload_id, retrying)
                continue
            except ApiError as exc:
                if exc.status == 429 and exc.retry_after is not None:
                    # Rate-limited: wait as long as the server asks (within reason), then
                    # continue from what it holds.
                    if exc.retry_after > MAX_RATE_LIMIT_WAIT:
                        raise
                    api.rate_limit_waits += 1
                    retrying.failed(exc, wait=exc.retry_after)
                    offset = _received(api, upload_id, retrying)
                    continue
                if exc.status != 409 or "expected_offset" not in exc.problem:
                    raise
                retrying.failed(exc)
                offset = int(exc.problem["expected_offset"])
                continue
            retrying.succeeded()
            offset = int(upload["received_bytes"])
    progress(offset)
    return upload, retrying.retried


def complete(api: Api, upload_id: str) -> dict[str, Any]:
    """Complete the upload, retrying over lost connections (it may have completed before an
    answer was lost, so its status is asked for first)."""
    retrying = Retrying()
    lost = False
    while True:
        try:
            if lost:
                current: dict[str, Any] = api.get(f"/uploads/{upload_id}")
                if current.get("status") != "receiving":
                    return current
            answer: dict[str, Any] = api.post(f"/uploads/{upload_id}/complete")
        except ConnectionLost as exc:
            lost = True
            retrying.failed(exc)
            continue
        return answer


def _version_ids(api: Api, dataset_id: str) -> set[str]:
    detail = api.get(f"/datasets/{dataset_id}")
    return {str(v["id"]) for v in detail.get("versions") or []}


def start_build(api: Api, dataset_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a build, retrying over lost connections without starting a second one: after a
    lost answer, a version that appeared meanwhile is the build that was started."""
    retrying = Retrying()
    before: set[str] | None = None
    while True:
        try:
            if before is None:
                before = _version_ids(api, dataset_id)
            else:
                appeared = _version_ids(api, dataset_id) - before
                if appeared:
                    return dict(api.get(f"/versions/{appeared.pop()}"))
            started: dict[str, Any] = api.post(f"/datasets/{dataset_id}/builds", body)
        except ConnectionLost as exc:
            retrying.failed(exc)
            continue
        return started


def follow_build(
    api: Api, version: dict[str, Any], progress: Callable[[float, str | None], None]
) -> dict[str, Any]:
    """Poll the version until its build is ready, failed or cancelled."""
    retrying = Retrying()
    while version.get("status") not in DONE:
        rows = version.get("progress_rows") or 0
        speed = version.get("mib_per_second")
        label = f"building: {rows:,} rows" + (f", {speed:.1f} MiB/s" if speed else "")
        progress(float(version.get("percent") or 0.0), label)
        time.sleep(BUILD_POLL_SECONDS)
        try:
            version = api.get(f"/versions/{version['id']}")
            retrying.succeeded()
        except ConnectionLost as exc:
            retrying.failed(exc)
    progress(100.0 if version.get("status") == "ready" else float(version.get("percent") or 0),
             f"build {version.get('status')}")
    return version
