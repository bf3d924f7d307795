"""Prediction against a deployed endpoint over HTTP (``edge-infer predict --url ...``).

Images go in batches to ``POST /models/{name}/predict/batch`` (multipart, field ``files``
repeated), several batches at once (``concurrency``). A server without that route (it answers
404 "Not Found" or 405) gets one ``POST /models/{name}/predict`` per image instead, and so does
a batch refused as a whole for its size (413) or shape (422). 429 and 503-with-Retry-After are
retried after the time the server asks for (capped), connection errors and timeouts after an
exponential back-off; a 503 without Retry-After (model unavailable) is not retried.
"""

from __future__ import annotations

import email.utils
import mimetypes
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from service.cli.files import UsageError
from service.cli.outcome import ModelProblem, Outcome, error_text

MAX_RETRY_AFTER_S = 60.0
BATCH_FALLBACK_STATUSES = frozenset({413, 422})


def retry_after_seconds(value: str | None, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at 60."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _detail(response: httpx.Response) -> object:
    try:
        return response.json().get("detail", response.text[:200])
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason_phrase


class RemotePredictor:
    """Classify image files with a model served at ``url`` (any path prefix is kept).

    Raises (constructor):
        UsageError: the server knows no model of that name.
        ModelProblem: the server cannot be reached, refuses the key, or the model is unavailable.
    """

    def __init__(
        self,
        url: str,
        model: str,
        k: int,
        *,
        api_key: str | None,
        api_key_header: str,
        batch_size: int,
        concurrency: int,
        timeout: float,
        retries: int,
    ) -> None:
        headers = {api_key_header: api_key} if api_key else {}
        self.client = httpx.Client(
            base_url=url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.k = k
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retries = retries
        self._batch_route: bool | None = None
        self._lock = threading.Lock()
        info = self._get(f"models/{quote(model, safe='')}")
        if info.status_code == 404:
            raise UsageError(f"no model named {model!r} at {url}: {_detail(info)}")
        if info.status_code != 200:
            raise ModelProblem(
                f"GET models/{model} at {url} answered {error_text(info.status_code, _detail(info))}"
            )
        body = info.json()
        self.name: str = body["name"]
        self.labels: list[str] = list(body["labels"])

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str) -> httpx.Response:
        try:
            return self._send("GET", path)
        except httpx.TransportError as exc:
            raise ModelProblem(f"cannot reach {self.client.base_url}: {exc}") from None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on transport errors, 429, and 503 with Retry-After."""
        for attempt in range(self.retries + 1):
            backoff = min(0.5 * 2**attempt, 10.0)
            last = attempt == self.retries
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
                time.sleep(backoff)
                continue
            busy = response.status_code == 429 or (
                response.status_code == 503 and "retry-after" in response.headers
            )
            if busy and not last:
                time.sleep(retry_after_seconds(response.headers.get("retry-after"), backoff))
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def predict(self, paths: Sequence[Path], done: Callable[[int], None]) -> list[Outcome]:
        """One Outcome per path, in order; ``done(n)`` as each batch of n finishes."""
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        results: list[list[Outcome]] = [[] for _ in chunks]
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._chunk, chunk): i for i, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                done(len(chunks[index]))
        return [outcome for chunk in results for outcome in chunk]

    def _chunk(self, paths: Sequence[Path]) -> list[Outcome]:
        uploads: list[tuple[Path, bytes]] = []
        unreadable: dict[Path, Outcome] = {}
        for path in paths:
            try:
                uploads.append((path, path.read_bytes()))
            except OSError as exc:
                unreadable[path] = Outcome(path, self.name, error=error_text(0, f"cannot read file: {exc}"))
        answered = dict(self._batch(uploads)) if uploads else {}
        return [unreadable.get(path) or answered[path] for path in paths]

    def _batch(self, uploads: list[tuple[Path, bytes]]) -> list[tuple[Path, Outcome]]:
        if len(uploads) == 1 or self._batch_route is False:
            return [(path, self._single(path, data)) for path, data in uploads]
        files = [("files", (path.name, data, _mime(path))) for path, data in uploads]
        try:
            response = self._send(
                "POST",
                f"models/{quote(self.name, safe='')}/predict/batch",
                params={"top_k": self.k},
                files=files,
            )
        except httpx.TransportError as exc:
            return [(path, Outcome(path, self.name, error=error_text(0, str(exc)))) for path, _ in uploads]
        detail = _detail(response) if response.status_code != 200 else None
        if response.status_code == 405 or (response.status_code == 404 and detail == "Not Found"):
            with self._lock:
                self._batch_route = False
            return [(path, self._single(path, data)) for path, data in uploads]
        if response.status_code in BATCH_FALLBACK_STATUSES:
            return [(path, self._single(path, data)) for path, data in uploads]
        if response.status_code != 200:
            error = error_text(response.status_code, detail)
            return [(path, Outcome(path, self.name, error=error)) for path, _ in uploads]
        self._batch_route = True
        items = response.json()["predictions"]
        return [(path, self._outcome(path, item)) for (path, _), item in zip(uploads, items, strict=True)]

    def _single(self, path: Path, data: bytes) -> Outcome:
        answer = self._post_file("predict", path, data)
        return answer if isinstance(answer, Outcome) else self._outcome(path, answer)

    def _post_file(self, route: str, path: Path, data: bytes) -> dict[str, Any] | Outcome:
        """POST one file to ``models/{name}/{route}``: the JSON answer, or the failed Outcome."""
        try:
            response = self._send(
                "POST",
                f"models/{quote(self.name, safe='')}/{route}",
                params={"top_k": self.k},
                files={"file": (path.name, data, _mime(path))},
            )
        except httpx.TransportError as exc:
            return Outcome(path, self.name, error=error_text(0, str(exc)))
        if response.status_code != 200:
            return Outcome(path, self.name, error=error_text(response.status_code, _detail(response)))
        return response.json()

    def _outcome(self, path: Path, item: dict[str, Any]) -> Outcome:
        if "error" in item:
            error = item["error"]
            return Outcome(path, self.name, error=error_text(error.get("status", 0), error.get("detail")))
        prediction = {key: value for key, value in item.items() if key != "filename"}
        return Outcome(path, self.name, prediction=prediction)


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
