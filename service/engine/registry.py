"""Model registry: every ``<model_dir>/*/manifest.json`` becomes an ONNX Runtime session.

A model is served only after its manifest validates, its file's sha256 matches and the
manifest's contract with the graph holds (``service.engine.contract``); anything else leaves it
*unavailable* with the reason, and the other models keep serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort
from pydantic import ValidationError

from service.engine.contract import GraphContract, check_contract
from service.errors import ModelNotFound, ModelUnavailable
from service.manifest import MANIFEST_FILENAME, Manifest, sha256_of

log = logging.getLogger(__name__)

# Where s3:// models are copied when no cache folder is given (Lambda: /tmp is the writable one).
DEFAULT_MODEL_CACHE = Path("/tmp/edge-infer-models")


@dataclass(frozen=True)
class LoadedModel:
    """A verified model with its ONNX Runtime session (``session.run`` is thread-safe) and the
    contract its manifest was checked against at load."""

    manifest: Manifest
    session: ort.InferenceSession
    path: Path
    contract: GraphContract

    @property
    def name(self) -> str:
        return self.manifest.name


@dataclass(frozen=True)
class UnavailableModel:
    """A model directory that could not be served, and why (shown in ``/health``)."""

    name: str
    reason: str


@dataclass
class ModelRegistry:
    ready: dict[str, LoadedModel] = field(default_factory=dict)
    unavailable: dict[str, UnavailableModel] = field(default_factory=dict)

    def get(self, name: str) -> LoadedModel | UnavailableModel | None:
        return self.ready.get(name) or self.unavailable.get(name)

    def require(self, name: str) -> LoadedModel:
        """The served model ``name``.

        Raises:
            ModelNotFound: no model of that name (404); the detail lists the served ones.
            ModelUnavailable: known but not served (503); the detail gives the load-time reason.
        """
        found = self.get(name)
        if found is None:
            known = ", ".join(sorted(self.ready)) or "none"
            raise ModelNotFound(f"no model named {name!r}; models being served: {known}")
        if not isinstance(found, LoadedModel):
            raise ModelUnavailable(f"model {name!r} is not available: {found.reason}")
        return found

    def readiness(self, default_model: str) -> Readiness:
        """Whether the server is ready: every model found is serving and the default model is
        among them. ``/health``, ``/v2/health/ready`` and the Kubernetes probes all read this."""
        unavailable = list(self.unavailable.values())
        if default_model not in self.ready and default_model not in self.unavailable:
            served = ", ".join(sorted(self.ready)) or "none"
            reason = f"EDGE_DEFAULT_MODEL names no model found in the model directory (served: {served})"
            unavailable.append(UnavailableModel(default_model, reason))
        return Readiness(bool(self.ready) and not unavailable, sorted(self.ready), unavailable)


@dataclass(frozen=True)
class Readiness:
    """``ready``: the server can answer for every model it found; ``models``: the names served;
    ``unavailable``: the models found but not served (and a missing default model), with why."""

    ready: bool
    models: list[str]
    unavailable: list[UnavailableModel]


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """Session options for low-latency CPU inference.

    One inference uses ``intra_op_threads`` threads; parallel execution across graph branches
    is off (classifiers are chains, and it would oversubscribe the cores). Spinning threads are
    turned off so idle workers do not burn CPU between requests (matters on Lambda, billed per ms).
    See https://onnxruntime.ai/docs/performance/tune-performance/threading.html
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_model(manifest_path: Path, intra_op_threads: int) -> LoadedModel:
    """Validate one manifest, verify its model file, open an ONNX Runtime session and check
    the manifest's contract with the graph.

    Raises:
        ValueError: malformed manifest, missing file, size or sha256 mismatch, or (as
            ``ContractError``) a graph or preprocessing that does not match the manifest.
    """
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_bytes())
    except ValidationError as exc:
        raise ValueError(f"malformed manifest: {exc.error_count()} error(s); {_first(exc)}") from exc
    model_path = manifest_path.parent / manifest.file
    if not model_path.is_file():
        raise ValueError(f"model file {manifest.file} is missing")
    if model_path.stat().st_size != manifest.size_bytes:
        raise ValueError(f"model file {manifest.file} has the wrong size (truncated or replaced)")
    if sha256_of(model_path) != manifest.sha256:
        raise ValueError(f"model file {manifest.file} fails its sha256 check (tampered or corrupt)")
    # The bytes just verified are the bytes loaded: no window to swap the file in between.
    options = session_options(intra_op_threads)
    # Loaded from bytes, a graph's external-data `location`s would resolve against the working
    # directory; anchored here, ONNX Runtime refuses any that leave the model's own folder
    # (absolute, or `..` out of it: its ValidateExternalDataPath, onnxruntime PR #26776).
    options.add_session_config_entry(
        "session.model_external_initializers_file_folder_path", str(model_path.parent.resolve())
    )
    try:
        session = ort.InferenceSession(
            model_path.read_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        if "External data path" not in str(exc):
            raise
        # ONNX Runtime's message names absolute paths; /health gets the reason without them.
        raise ValueError(f"model file {manifest.file} refers to external data outside its folder") from exc
    contract = check_contract(manifest, session)
    return LoadedModel(manifest=manifest, session=session, path=model_path, contract=contract)


def load_registry(
    model_dir: Path | str, intra_op_threads: int, cache_dir: Path | None = None
) -> ModelRegistry:
    """Load every model under ``model_dir``; failures are recorded, never raised.

    ``model_dir`` is a local folder, or an ``s3://bucket/prefix/`` URI whose models are first
    copied into ``cache_dir`` (``service.engine.model_sources``; default ``DEFAULT_MODEL_CACHE``).
    """
    registry = ModelRegistry()
    if isinstance(model_dir, str) and model_dir.startswith("s3://"):
        from service.engine.model_sources import fetch_s3_models

        fetched = fetch_s3_models(model_dir, cache_dir or DEFAULT_MODEL_CACHE)
        for name, reason in fetched.unavailable.items():
            registry.unavailable[name] = UnavailableModel(name, reason)
        manifests = fetched.manifests
    else:
        model_dir = Path(model_dir)
        manifests = sorted(model_dir.glob(f"*/{MANIFEST_FILENAME}")) if model_dir.is_dir() else []
    if not manifests and not registry.unavailable:
        log.warning("no model manifests found", extra={"model_dir": str(model_dir)})
    for manifest_path in manifests:
        # A model is known by its manifest's name; fall back to the directory name if unreadable.
        fallback_name = manifest_path.parent.name
        try:
            model = load_model(manifest_path, intra_op_threads)
        except Exception as exc:  # noqa: BLE001 - one bad model must not stop the others
            reason = _reason(exc)
            registry.unavailable[fallback_name] = UnavailableModel(fallback_name, reason)
            log.error(
                "model unavailable",
                extra={"model": fallback_name, "reason": reason, "error": repr(exc)},
            )
            continue
        if model.name in registry.ready:
            reason = (
                f"duplicate model name {model.name!r} (also in {registry.ready[model.name].path.parent.name})"
            )
            registry.unavailable[fallback_name] = UnavailableModel(fallback_name, reason)
            continue
        registry.ready[model.name] = model
        log.info("model loaded", extra={"model": model.name, "version": model.manifest.version})
    return registry


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "(root)"
    return f"{where}: {error['msg']}"


def _reason(exc: Exception) -> str:
    """The reason shown in /health: what failed, without the server's file paths."""
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, OSError):  # str(OSError) carries the absolute path; the log keeps it
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"
    return f"{type(exc).__name__}: {exc}"
