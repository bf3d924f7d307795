"""Service settings, read from the environment (prefix ``EDGE_``).

Every limit here is a defence for a public endpoint; the defaults are sized for AWS Lambda
behind API Gateway (6 MB synchronous invocation payload:
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PROJECT_ROOT / "models_onnx"


def available_cpus() -> int:
    """Number of CPUs this process may run on (affinity / cgroup cpuset aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Runtime configuration. Each field maps to ``EDGE_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EDGE_", frozen=True)

    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="Directory scanned for */manifest.json.")
    default_model: str = Field("mnist", description="Model answering POST /predict.")
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per session; 0 = CPUs available."
    )
    inference_workers: int = Field(
        0, ge=0, description="Concurrent inferences (thread pool size); 0 = CPUs available."
    )
    max_body_bytes: int = Field(
        6 * 1024 * 1024, gt=0, description="Largest request body accepted, in bytes."
    )
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

    # Security. Lambda deployments leave api_keys empty and use API Gateway auth instead.
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (),
        description=(
            "Comma-separated API keys; when set, every route except /health and /metrics needs "
            "one in the `api_key_header` header. Empty = no authentication."
        ),
    )
    api_key_header: str = Field("X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
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
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_json: bool = Field(True, description="One JSON object per log line (False: plain text).")

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("model_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def resolved_intra_op_threads(self) -> int:
        return self.intra_op_threads or available_cpus()

    def resolved_inference_workers(self) -> int:
        return self.inference_workers or available_cpus()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
