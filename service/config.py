"""Service settings, read from the environment (prefix ``EDGE_``) by ``Settings.from_env()``.

Every limit here is a defence for a public endpoint; the defaults are sized for AWS Lambda
behind API Gateway (6 MB synchronous invocation payload:
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).

A plain pydantic model plus a ten-line environment reader, not pydantic-settings: that package
pulls in its CLI, dotenv and cloud-secret sources and costs ~115 ms of every cold start. The
settings are validated as a whole when read: a bad value or combination refuses to start the
service with a message naming the values (``pydantic.ValidationError``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from service.engine.cpus import ThreadPlan, cpu_budget, plan_threads
from service.images.url_fetch import UrlPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PROJECT_ROOT / "models_onnx"
ENV_PREFIX = "EDGE_"


class Settings(BaseModel):
    """Runtime configuration. Each field maps to ``EDGE_<FIELD>`` in the environment.

    ``Settings()`` is the defaults; ``Settings.from_env()`` reads the environment.
    """

    # hide_input_in_errors: a refused start-up must not print EDGE_API_KEYS into the logs.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # A str only for an s3:// URI (service.engine.model_sources); anything else becomes an absolute Path.
    model_dir: Path | str = Field(
        DEFAULT_MODEL_DIR,
        description="Directory scanned for */manifest.json, or s3://bucket/prefix/ for a model store.",
    )
    model_cache: Path = Field(
        Path("/tmp/edge-infer-models"),
        description="Folder the models of an s3:// EDGE_MODEL_DIR are copied into (Lambda: under /tmp).",
    )
    default_model: str = Field("mnist", description="Model answering POST /predict.")
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per session; 0 = from the CPU budget."
    )
    inference_workers: int = Field(
        0, ge=0, description="Concurrent inferences (thread pool size); 0 = from the CPU budget."
    )
    max_body_bytes: int = Field(6 * 1024 * 1024, gt=0, description="Largest request body accepted, in bytes.")
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="Largest decoded image (width*height) accepted."
    )
    max_pending_predictions: int = Field(
        64,
        ge=1,
        description=(
            "Predictions admitted at once (running or waiting for a worker); more get a 503 with "
            "Retry-After before their body is read. Bounds memory under a flood to about this "
            "many request bodies."
        ),
    )
    default_top_k: int = Field(3, ge=1)
    max_top_k: int = Field(1000, ge=1)

    # Several images per request (batch route, V1 instances, V2 BYTES/FP32 batches).
    max_batch_images: int = Field(
        32, ge=1, le=1024, description="Most images in one request; more get a 413 before decoding."
    )
    batch_chunk: int = Field(
        8,
        ge=1,
        description=(
            "Images per ONNX Runtime call when a request carries several: a batch runs in chunks "
            "of this size (benchmarks/http/batch_http.py --chunks measures the fastest)."
        ),
    )

    # Dynamic batching across requests (service/engine/dynamic_batching.py); off on Lambda, where an
    # execution environment serves one request at a time.
    dynamic_batching: bool = Field(
        default_factory=lambda: "AWS_LAMBDA_FUNCTION_NAME" not in os.environ,
        description=(
            "Run the prepared images of concurrent requests for one model as one ONNX Runtime "
            "batch. Off by default on Lambda (one request per environment)."
        ),
    )
    max_batch_size: int = Field(
        8,
        ge=1,
        le=1024,
        description="Most images in one ONNX Runtime call of the dynamic batcher.",
    )
    max_batch_delay_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description=(
            "Milliseconds a free batch runner may wait for requests still being decoded while "
            "another batch of the model runs; a lone request never waits. Matters only with "
            "more than one runner (batch_runners)."
        ),
    )
    batch_runners: int = Field(
        0,
        ge=0,
        description="ONNX Runtime calls per model at once under dynamic batching; 0 = from the CPU budget.",
    )

    # Image URLs in JSON bodies: off by default (server-side request forgery; service/images/url_fetch.py).
    image_urls: bool = Field(False, description='Accept {"image_url": ...} JSON bodies.')
    image_url_allowed_hosts: tuple[str, ...] = Field(
        (),
        description=(
            "Comma-separated host names or IPs: when set, the only hosts image URLs are fetched "
            "from, and these may be private or loopback. Empty = any host with a global address."
        ),
    )
    image_url_connect_timeout: float = Field(3.0, gt=0, le=60, description="Seconds to connect, per hop.")
    image_url_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds for a whole URL fetch: lookups, redirects and the body."
    )

    # Security. Lambda deployments leave api_keys empty and use API Gateway auth instead.
    api_keys: tuple[SecretStr, ...] = Field(
        (),
        description=(
            "Comma-separated API keys; when set, every route except those in "
            "service.middleware.auth.OPEN_ROUTES (health, metrics, the page, docs) needs one in the "
            "`api_key_header` header. Empty = no authentication."
        ),
    )
    api_key_header: str = Field("X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    docs_enabled: bool = Field(
        True,
        description=(
            "Serve Swagger UI at /docs and the schema at /openapi.json, both without an API key "
            "(a deliberate choice: they describe the API, they do not use it). False removes both."
        ),
    )
    cors_origins: tuple[str, ...] = Field(
        (),
        description="Comma-separated origins allowed by CORS ('*' for any). Empty = CORS off.",
    )

    # Observability.
    metrics_enabled: bool = Field(
        default_factory=lambda: "AWS_LAMBDA_FUNCTION_NAME" not in os.environ,
        description=(
            "Serve Prometheus metrics at /metrics. Off by default on Lambda, where nothing can "
            "scrape a short-lived execution environment and prometheus-client only adds cold start."
        ),
    )
    emf: bool = Field(
        default_factory=lambda: "AWS_LAMBDA_FUNCTION_NAME" in os.environ,
        description=(
            "One CloudWatch Embedded Metric Format line per request on stdout (service.observability.emf). "
            "On by default on Lambda, where CloudWatch Logs turns it into metrics."
        ),
    )
    otel: bool = Field(
        False,
        description=(
            "Export OpenTelemetry spans of each request and its stages over OTLP "
            "(service.observability.otel; "
            "needs the otel extra; OTEL_* variables configure the exporter)."
        ),
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_json: bool = Field(True, description="One JSON object per log line (False: plain text).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``EDGE_<FIELD>`` variables (names case-insensitive), defaults elsewhere.

        Values are strings converted by the field types: integers, ``true/false/1/0/yes/no``
        for booleans, comma-separated lists for ``api_keys`` and ``cors_origins``. Variables
        with the prefix that name no field are ignored (other tools share the prefix).

        Raises:
            pydantic.ValidationError: a value of the wrong type or out of range, or a
                combination the service cannot run with (e.g. default_top_k > max_top_k).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for key, value in environ.items():
            name = key[len(ENV_PREFIX) :].lower() if key.upper().startswith(ENV_PREFIX) else ""
            if name in cls.model_fields:
                values[name] = value
        return cls.model_validate(values)

    @field_validator("api_keys", "cors_origins", "image_url_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("image_url_allowed_hosts")
    @classmethod
    def _canonical_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from service.images.url_fetch import normalize_allowed_host

        return tuple(normalize_allowed_host(host) for host in value)

    @field_validator("model_dir")
    @classmethod
    def _absolute(cls, value: Path | str) -> Path | str:
        if isinstance(value, str) and value.startswith("s3://"):
            return value
        return Path(value).expanduser().resolve()

    @field_validator("model_cache")
    @classmethod
    def _absolute_cache(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.default_top_k > self.max_top_k:
            raise ValueError(
                f"default_top_k ({self.default_top_k}) must not exceed max_top_k ({self.max_top_k})"
            )
        return self

    def url_policy(self) -> UrlPolicy:
        """What image URLs may be fetched (``service.images.url_fetch``); the byte cap is the body limit."""
        return UrlPolicy(
            enabled=self.image_urls,
            allowed_hosts=frozenset(self.image_url_allowed_hosts),
            max_bytes=self.max_body_bytes,
            connect_timeout=self.image_url_connect_timeout,
            total_timeout=self.image_url_timeout,
        )

    def thread_plan(
        self, environ: Mapping[str, str] | None = None, *, batching: bool | None = None
    ) -> ThreadPlan:
        """Inference workers and ONNX Runtime threads per inference, from the CPU budget.

        Explicit ``intra_op_threads`` / ``inference_workers`` win; see ``service.engine.cpus``.
        ``batching`` (default ``dynamic_batching``): False for callers that run ONNX Runtime in
        their workers themselves (the CLI's in-process mode), whatever the server does.
        """
        return plan_threads(
            cpu_budget(environ),
            self.intra_op_threads,
            self.inference_workers,
            batching=self.dynamic_batching if batching is None else batching,
            runners=self.batch_runners,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
