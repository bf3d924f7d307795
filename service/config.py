"""Service settings, read from the environment (prefix ``EDGE_``).

Every limit here is a defence for a public endpoint; the defaults are sized for AWS Lambda
behind API Gateway (6 MB synchronous invocation payload:
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    default_top_k: int = Field(3, ge=1)
    max_top_k: int = Field(1000, ge=1)

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
