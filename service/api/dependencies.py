"""FastAPI dependencies: what a route handler may ask for, read from ``request.app.state``.

``create_app`` puts the settings, the model registry, the metrics (or None) and the
admission (``service.engine.admission.Admission``) on ``app.state``; handlers declare them as parameters::

    async def handler(settings: SettingsDep, registry: RegistryDep, admission: AdmissionDep) -> ...

so routes are plain module-level functions that any app instance (tests, Lambda, uvicorn) can
serve. The readers are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a
thread hop per dependency per request for an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.engine.admission import Admission
from service.engine.registry import ModelRegistry
from service.observability.metrics import Metrics


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def _metrics(request: Request) -> Metrics | None:
    return request.app.state.metrics


async def _admission(request: Request) -> Admission:
    return request.app.state.admission


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
MetricsDep = Annotated[Metrics | None, Depends(_metrics)]
AdmissionDep = Annotated[Admission, Depends(_admission)]
