"""Multipart forms parsed into memory: uploaded files never go through a temporary file.

Starlette's ``Request.form()`` spools each file part to a ``SpooledTemporaryFile`` that rolls
over to disk past 1 MB (``MultiPartParser.spool_max_size``); a 12 MP phone JPEG (1-2 MB) was then
written to a temporary file and read back through a worker thread. The service already bounds
every body by ``EDGE_MAX_BODY_BYTES`` (``service.middleware.body_limit.BodySizeLimit``, which cuts the stream
off mid-way), so the parts can stay in memory: at most one body's bytes per request, as for raw
bodies (``Request.body()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser with file parts kept in memory (``SpooledTemporaryFile(max_size=0)``
    never rolls over: https://docs.python.org/3/library/tempfile.html#tempfile.SpooledTemporaryFile)."""

    spool_max_size = 0


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The request's multipart form, parsed into memory; the caller closes it (``form.close()``).

    Raises:
        HTTPException: 400 with Starlette's own message for a malformed form or one with more
            than ``max_files`` files / ``max_fields`` fields (what ``Request.form`` raises).
    """
    parser = InMemoryMultiPartParser(
        request.headers, request.stream(), max_files=max_files, max_fields=max_fields
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from None


@asynccontextmanager
async def in_memory_form(request: Request, *, max_files: int, max_fields: int) -> AsyncIterator[FormData]:
    """``read_form`` for the block, closed when it ends."""
    form = await read_form(request, max_files=max_files, max_fields=max_fields)
    try:
        yield form
    finally:
        await form.close()
