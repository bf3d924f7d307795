"""Models from S3 (or an S3-compatible store): ``EDGE_MODEL_DIR=s3://bucket/prefix/``.

The layout is the local one, in a bucket: ``<prefix><name>/manifest.json`` next to the ONNX
file the manifest names, as in Triton's ``s3://`` model repository
(https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/model_repository.html)
and KServe's ``storageUri``. ``fetch_s3_models`` copies each model into a local cache folder
(``EDGE_MODEL_CACHE``; on Lambda only ``/tmp`` is writable) and returns the manifests that the
registry then loads exactly as it loads a local folder (manifest validation, size, sha256,
graph contract).

Nothing from the bucket is trusted beyond its manifest:

- a model's folder name must be a plain name (``[A-Za-z0-9][A-Za-z0-9_.-]*``, never ``..``),
  and every path written is checked to lie inside the cache folder, whatever the keys say;
- the manifest is validated (``service.manifest.Manifest``: ``file`` is a bare file name) before
  its file is fetched, the file is streamed to a temporary name, never more bytes than the
  manifest's ``size_bytes``, and renamed into place only when its sha256 matches;
- a file whose external-data references leave the model folder is refused by ONNX Runtime at
  load (``service.engine.registry.session_options``).

Any failure (denied read, missing object, bad manifest, sha256 mismatch) makes that one model
unavailable with the reason, shown in ``/health``; the others still load.

Credentials, region and endpoint come from the standard AWS SDK chain, boto3's
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html), including
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html). The client is
botocore's, the library under boto3 that implements that chain, created directly: boto3's
session would add CPU time to every cold start that loads from S3.
botocore is imported only here, only for an ``s3://`` model directory: it is the ``s3`` extra,
and part of the AWS Lambda Python runtime already (with boto3), so the Lambda package needs
nothing more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.manifest import MANIFEST_FILENAME, Manifest, sha256_of

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
# The /health entry when the prefix cannot be listed: no model name is known then, and the
# bucket's name stays out of an unauthenticated endpoint (the log line has the URI).
STORE_ENTRY = "(model store)"
# A model folder name as it may appear in a cache path: no separators, no "." or "..".
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# A manifest is a few kB (ImageNet's 1000 labels: ~30 kB); anything far larger is not one.
MAX_MANIFEST_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20


def is_s3_uri(value: object) -> bool:
    """True for a string starting with ``s3://``."""
    return isinstance(value, str) and value.startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (``""`` or ending in ``/``)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """``s3://bucket`` or ``s3://bucket/some/prefix[/]``.

        Raises:
            ValueError: not an ``s3://`` URI, or no bucket.
        """
        if not is_s3_uri(uri):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, prefix = uri[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"


@dataclass
class FetchedModels:
    """What ``fetch_s3_models`` found: manifests ready to load, and models refused with why."""

    manifests: list[Path] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def s3_client() -> Any:
    """An S3 client from the standard configuration chain, with bounded waits (an unreachable
    store must fail a cold start in seconds, not after botocore's 60 s defaults)."""
    import botocore.session
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
    # A session of its own, reading the environment now (a shared default session would keep
    # whatever credentials it first found).
    return botocore.session.Session().create_client("s3", config=config)


def fetch_s3_models(uri: str, cache_dir: Path, client: Any = None) -> FetchedModels:
    """Copy every ``<prefix><name>/manifest.json`` model under ``uri`` into ``cache_dir/<name>/``.

    Args:
        uri: ``s3://bucket/prefix/``.
        cache_dir: local folder for the copies (created if missing). A model's file already
            there with the manifest's sha256 is not downloaded again.
        client: a botocore (or boto3) S3 client; default ``s3_client()``.

    Returns:
        The local manifest paths of the models fetched, sorted by name, and the reason for each
        model that was not. Listing the prefix itself failing (denied, no such bucket) leaves
        no manifest and one unavailable entry, ``STORE_ENTRY``. Never raises for what the
        store answers.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    location = S3Location.parse(uri)
    cache_root = cache_dir.expanduser().resolve()
    result = FetchedModels()
    client = client or s3_client()
    try:
        names = list_model_names(client, location)
    except (BotoCoreError, ClientError) as exc:
        reason = f"cannot list the model store: {_s3_reason(exc)}"
        result.unavailable[STORE_ENTRY] = reason
        log.error(
            "model store unreadable",
            extra={"model_dir": str(location), "reason": reason, "error": str(exc)},
        )
        return result
    for name in names:
        try:
            manifest_path = fetch_model(client, location, name, cache_root)
        except (BotoCoreError, ClientError) as exc:
            result.unavailable[name] = f"cannot read the model from the store: {_s3_reason(exc)}"
            error = str(exc)
        except (ValueError, OSError) as exc:
            result.unavailable[name] = str(exc) if isinstance(exc, ValueError) else _os_reason(exc)
            error = repr(exc)
        else:
            result.manifests.append(manifest_path)
            continue
        log.error(
            "model unavailable", extra={"model": name, "reason": result.unavailable[name], "error": error}
        )
    return result


def list_model_names(client: Any, location: S3Location) -> list[str]:
    """Sorted ``<name>`` of every key ``<prefix><name>/manifest.json`` (one level deep only).

    Raises:
        botocore.exceptions.ClientError / BotoCoreError: the listing failed.
    """
    names = set()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
        for item in page.get("Contents", []):
            parts = item["Key"][len(location.prefix) :].split("/")
            if len(parts) == 2 and parts[1] == MANIFEST_FILENAME:
                names.add(parts[0])
    return sorted(names)


def fetch_model(client: Any, location: S3Location, name: str, cache_root: Path) -> Path:
    """Fetch one model's manifest and file into ``cache_root/name/``; its local manifest path.

    Raises:
        ValueError: unsafe folder name, malformed or oversized manifest, file larger than or
            different from (sha256) what the manifest states.
        botocore.exceptions.ClientError / BotoCoreError: a read was denied or an object is missing.
        OSError: the cache cannot be written.
    """
    folder = _inside(cache_root, name)
    key = f"{location.prefix}{name}/"
    body = _read_capped(client, location.bucket, key + MANIFEST_FILENAME, MAX_MANIFEST_BYTES)
    try:
        manifest = Manifest.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(f"malformed manifest: {exc.error_count()} error(s)") from exc
    folder.mkdir(parents=True, exist_ok=True)
    model_path = _inside(folder, manifest.file)
    if not _cached(model_path, manifest):
        _download_verified(client, location.bucket, key + manifest.file, model_path, manifest)
    manifest_path = _inside(folder, MANIFEST_FILENAME)
    _write_atomic(manifest_path, body)
    log.info("model fetched", extra={"model": name, "source": f"{location}{name}/"})
    return manifest_path


def _inside(parent: Path, name: str) -> Path:
    """``parent / name`` for a plain ``name``; refuses anything that would leave ``parent``."""
    if not _SAFE_NAME.match(name) or name in {".", ".."}:
        raise ValueError(f"refused unsafe name {name!r} from the model store")
    path = parent / name
    if path.resolve().parent != parent.resolve():  # e.g. a symlink planted in the cache
        raise ValueError(f"refused {name!r}: it resolves outside the model cache")
    return path


def _cached(path: Path, manifest: Manifest) -> bool:
    return (
        path.is_file() and path.stat().st_size == manifest.size_bytes and sha256_of(path) == manifest.sha256
    )


def _read_capped(client: Any, bucket: str, key: str, limit: int) -> bytes:
    response = client.get_object(Bucket=bucket, Key=key)
    with response["Body"] as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{key.rsplit('/', 1)[-1]} is larger than {limit} bytes")
    return bytes(data)


def _download_verified(client: Any, bucket: str, key: str, path: Path, manifest: Manifest) -> None:
    """Stream the object to ``path.partial``, hashing as it comes; rename only if it verifies."""
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as stream, partial.open("wb") as out:
            while chunk := stream.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > manifest.size_bytes:
                    raise ValueError(f"model file {manifest.file} is larger than its manifest says")
                digest.update(chunk)
                out.write(chunk)
        if size != manifest.size_bytes:
            raise ValueError(f"model file {manifest.file} has the wrong size (truncated or replaced)")
        if digest.hexdigest() != manifest.sha256:
            raise ValueError(f"model file {manifest.file} fails its sha256 check (tampered or corrupt)")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _s3_reason(exc: Exception) -> str:
    """The store's error code (``AccessDenied``, ``NoSuchKey``, ``NoSuchBucket``...) or the
    client's error class. Not the message: S3's AccessDenied message names the caller's role
    ARN and the resource, which an unauthenticated /health must not show (the log has it)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "error")
    return type(exc).__name__


def _os_reason(exc: OSError) -> str:
    return f"model cache not writable: {type(exc).__name__}: {exc.strerror or 'I/O error'}"
