"""Multipart uploads are parsed in memory (``service.api.forms``): a phone-size photo, over
Starlette's 1 MB spool limit, stays in memory, and over real HTTP its answer on the single and
batch routes equals the raw-body upload's.
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.requests import Request
from starlette.types import Message

from service.api.forms import read_form
from tests.harness.photos import phone_jpegs

from .support import running_server

PHOTO = phone_jpegs(1)[0]
BOUNDARY = "in-memory-test"


def _body(parts: int) -> bytes:
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="phone.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return b"".join(part + PHOTO + b"\r\n" for _ in range(parts)) + f"--{BOUNDARY}--\r\n".encode()


def test_parts_past_starlettes_spool_limit_stay_in_memory() -> None:
    assert len(PHOTO) > 1024 * 1024  # past Starlette's 1 MB spool limit, or the test proves nothing
    body = _body(2)
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]  # as uvicorn delivers it

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())],
    }

    async def parse() -> list[tuple[bool, bytes]]:
        form = await read_form(Request(scope, receive), max_files=2, max_fields=4)
        try:
            # UploadFile._in_memory: Starlette's own test of whether the spool rolled to disk.
            return [(part._in_memory, await part.read()) for part in form.getlist("files")]  # type: ignore[union-attr]
        finally:
            await form.close()

    assert asyncio.run(parse()) == [(True, PHOTO), (True, PHOTO)]


def test_a_phone_photo_answers_the_same_as_multipart_raw_and_batch() -> None:
    with running_server() as server:
        url = f"{server.url}/models/mnist/predict"
        raw = httpx.post(url, content=PHOTO, headers={"content-type": "image/jpeg"}, timeout=60)
        form = httpx.post(url, files={"file": ("phone.jpg", PHOTO, "image/jpeg")}, timeout=60)
        batch = httpx.post(
            f"{url}/batch",
            files=[("files", (f"p{i}.jpg", PHOTO, "image/jpeg")) for i in range(2)],
            timeout=60,
        )
    assert raw.status_code == form.status_code == batch.status_code == 200, (form.text, batch.text)
    assert form.json()["top_k"] == raw.json()["top_k"]
    assert [p["top_k"] for p in batch.json()["predictions"]] == [raw.json()["top_k"]] * 2
