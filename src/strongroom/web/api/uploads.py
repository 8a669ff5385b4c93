"""Resumable, chunked uploads over HTTPS, encrypted as they arrive.

A client opens an upload, sends its bytes in chunks at the offset the upload
has received so far (``received_bytes``; a wrong offset is answered 409 with
``expected_offset``), completes it, and builds it into a dataset version. A
chunk body is streamed from the socket into the encrypting writer on a worker
thread and is never held whole in memory; its size is capped by the setting
upload_chunk_max_bytes (not max_request_bytes), the whole upload by the
tenant's limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from starlette.requests import ClientDisconnect

from strongroom.datasets import uploads
from strongroom.datasets.errors import BadUpload, UploadTooLarge
from strongroom.datasets.models import Upload, UploadStatus
from strongroom.errors import StrongroomError
from strongroom.identity.permissions import Permission
from strongroom.telemetry.models import UsageFeature
from strongroom.telemetry.services import record_usage
from strongroom.tenancy import limits
from strongroom.web.api.dataset_schemas import UploadCreate, UploadOut
from strongroom.web.auth import Principal, current, deployment_of, route_options, tenant_of
from strongroom.web.firewall import body_limit

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])
CHUNK_MEDIA_TYPE = "application/octet-stream"
OFFSET_MAX = 2**62


class ChunkMediaType(StrongroomError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ChunkInterrupted(StrongroomError):
    """The client went away mid-chunk; nothing of the chunk was kept."""

    status = 400
    slug = "upload-interrupted"
    title = "Upload interrupted"


def upload_out(upload: Upload) -> UploadOut:
    return UploadOut(id=upload.id, format=upload.format, status=upload.status,
                     received_bytes=upload.received_bytes, max_bytes=upload.max_bytes,
                     declared_size=upload.declared_size, created_at=upload.created_at)


@router.post("", response_model=UploadOut, status_code=201, **route_options(Permission.ANALYSE))
def create_upload(body: UploadCreate, request: Request) -> UploadOut:
    """Open an upload of a CSV or Parquet file, up to your tenant's size limit.

    The file name is metadata only. Declaring ``size`` makes the server refuse
    at once a file over the limit, and refuse to complete an upload short of it.
    """
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        limit = limits.upload_max_bytes(session, tenant.id, dep.settings.upload_max_bytes)
        upload = uploads.create_upload(
            session, dep, tenant, principal.actor(), filename=body.filename, fmt=body.format,
            max_bytes=limit.value, csv_options=body.csv.model_dump() if body.csv else None,
            declared_size=body.size,
        )
        session.flush()
        return upload_out(upload)


@router.get("/{upload_id}", response_model=UploadOut, **route_options(Permission.ANALYSE))
def get_upload(upload_id: str, request: Request) -> UploadOut:
    """Where an upload stands: a client resumes at ``received_bytes``."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        return upload_out(uploads.get_upload(session, tenant_of(session, principal), upload_id))


def _chunk_options() -> Any:
    options = route_options(Permission.ANALYSE)
    options["openapi_extra"] = {
        **options["openapi_extra"],
        "requestBody": {
            "required": True,
            "description": "The chunk's bytes, streamed",
            "content": {CHUNK_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
    }
    return options


def _body_pieces(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """The request body as a blocking iterator for a worker thread, each piece pulled on the
    event loop as the writer asks for it: the body is never held whole."""

    async def pull() -> bytes | None:
        async for piece in stream:
            if piece:
                return piece
        return None

    first = anyio.from_thread.run(pull)
    if first is None:
        # Refused here, inside the write, so that the write leaves nothing behind.
        raise BadUpload("the chunk is empty", hint="send at least one byte")
    yield first
    while (piece := anyio.from_thread.run(pull)) is not None:
        yield piece


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw is not None and raw.isdigit() else None


def _append(request: Request, principal: Principal, upload_id: str, offset: int) -> UploadOut:
    """Runs on a worker thread: one transaction around the streamed, encrypted write."""
    dep = deployment_of(request)
    length = _declared_length(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        state = uploads.upload_status(session, tenant, upload_id)
        limit = min(state.max_bytes, state.declared_size or state.max_bytes)
        # A declared length over what is left is refused before a byte is read (the offset
        # and the upload's state are append_chunk's to refuse first).
        receiving = state.status == UploadStatus.RECEIVING.value
        if (receiving and offset == state.received_bytes and length is not None
                and offset + length > limit):
            raise UploadTooLarge(f"the upload is over this tenant's limit of {limit} bytes")
        uploads.append_chunk(session, dep, tenant, principal.actor(), upload_id, offset,
                             _body_pieces(request.stream()))
        return upload_out(uploads.get_upload(session, tenant, upload_id))


@router.put("/{upload_id}/chunks", response_model=UploadOut, **_chunk_options())
@body_limit("upload_chunk_max_bytes")
async def put_chunk(
    upload_id: str,
    request: Request,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX,
                                 description="Where this chunk starts: the upload's "
                                 "received_bytes")],
) -> UploadOut:
    """Send the next chunk (application/octet-stream) at ``offset``.

    Answered 409 with ``expected_offset`` when the upload continues elsewhere,
    413 when the chunk takes the upload over its limit; either way nothing of
    the chunk is kept. A chunk may be up to the deployment's
    upload_chunk_max_bytes (64 MiB unless changed).
    """
    principal = current(request)
    media_type = request.headers.get("content-type", CHUNK_MEDIA_TYPE)
    if media_type.split(";")[0].strip().lower() != CHUNK_MEDIA_TYPE:
        raise ChunkMediaType(f"send the chunk as {CHUNK_MEDIA_TYPE}")
    try:
        out: UploadOut = await anyio.to_thread.run_sync(_append, request, principal,
                                                        upload_id, offset)
    except ClientDisconnect:
        raise ChunkInterrupted("the connection ended before the chunk did; nothing of it "
                               "was kept", hint="ask for the upload's received_bytes and "
                               "send the chunk again") from None
    return out


@router.post("/{upload_id}/complete", response_model=UploadOut,
             **route_options(Permission.ANALYSE))
def complete_upload(upload_id: str, request: Request) -> UploadOut:
    """Close the upload for building; a declared size must have arrived in full."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        done = uploads.complete_upload(session, dep, tenant, principal.actor(), upload_id)
        record_usage(session, dep, principal, UsageFeature.DATASET_UPLOAD,
                     bytes=done.received_bytes)
        return upload_out(done)


@router.delete("/{upload_id}", status_code=204, response_class=Response,
               **route_options(Permission.ANALYSE))
def abort_upload(upload_id: str, request: Request) -> Response:
    """Abort an upload still receiving: its stored chunks are removed."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        objects = uploads.abort_upload(session, dep, tenant_of(session, principal),
                                       principal.actor(), upload_id)
    uploads.remove_objects(dep.store, objects)
    return Response(status_code=204)
