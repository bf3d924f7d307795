"""FastAPI dependencies: what a route handler may ask for, read from ``request.app.state``.

``create_app`` puts the settings, the model registry, the metrics (or None) and the
concurrency limits on ``app.state``; handlers declare them as parameters::

    async def handler(settings: SettingsDep, registry: RegistryDep, limits: LimitsDep) -> ...

so routes are plain module-level functions that any app instance (tests, Lambda, uvicorn) can
serve. The readers are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a
thread hop per dependency per request for an attribute read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import Depends, Request

from .config import Settings
from .metrics import Metrics
from .registry import LoadedModel, ModelRegistry

if TYPE_CHECKING:  # not imported at run time: Lambda (no batching) never loads the module
    from .dynamic_batching import Batchers, DynamicBatcher


@dataclass(frozen=True)
class Limits:
    """The bounds on concurrent predictions of one app.

    ``admission``: predictions admitted at once (reading their body, being prepared, queued
    for a batch or running), ``settings.max_pending_predictions`` tokens; beyond that a request
    gets a 503 before its body is read. ``workers``: worker threads at once (decode,
    preprocess and, without dynamic batching, ONNX Runtime), the thread plan's ``workers``
    tokens. ``batchers``: the per-model dynamic batchers, None when batching is off (Lambda).
    """

    admission: anyio.CapacityLimiter
    workers: anyio.CapacityLimiter
    batchers: Batchers | None = None

    @classmethod
    def from_settings(cls, settings: Settings, workers: int, batchers: Batchers | None = None) -> Limits:
        return cls(
            anyio.CapacityLimiter(settings.max_pending_predictions), anyio.CapacityLimiter(workers), batchers
        )

    def batcher(self, model: LoadedModel) -> DynamicBatcher | None:
        """``model``'s dynamic batcher, or None when batching is off."""
        return None if self.batchers is None else self.batchers.for_model(model)


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def _metrics(request: Request) -> Metrics | None:
    return request.app.state.metrics


async def _limits(request: Request) -> Limits:
    return request.app.state.limits


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
MetricsDep = Annotated[Metrics | None, Depends(_metrics)]
LimitsDep = Annotated[Limits, Depends(_limits)]
