"""The OpenAPI document's parts that FastAPI cannot derive from a route's signature.

Bodies that a route reads or writes itself (multipart, the binary tensor extension, protocols
whose errors are their own) are described by their pydantic wire models through a reference,
``schema_ref(Model)``; ``complete(schema, settings)`` adds those models' JSON Schemas to
``components.schemas`` when the document is first built, so a cold start builds none of them,
and writes the settings-dependent bounds (top-k, the default model) into the parameters.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.api.parameters import TOP_K_HELP
from service.config import Settings

_REFERENCED: dict[str, type[BaseModel]] = {}
REF_TEMPLATE = "#/components/schemas/{model}"


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    """``{"$ref": ...}`` to ``model``'s schema, which ``complete`` adds to the document."""
    _REFERENCED[model.__name__] = model
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def complete(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Add the referenced wire models and the settings' bounds to an OpenAPI document (in
    place; returned).

    ``top_k``: minimum 1, maximum ``max_top_k``, default ``default_top_k``; the model-name
    path parameter gets ``default_model`` as its example.
    """
    if _REFERENCED:
        from pydantic.json_schema import models_json_schema  # only when the document is built

        models = [(m, "validation") for m in _REFERENCED.values()]
        _, definitions = models_json_schema(models, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in definitions.get("$defs", {}).items():
            components.setdefault(name, definition)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "top_k":
                    parameter["schema"] = {
                        "type": "integer",
                        "maximum": settings.max_top_k,
                        "minimum": 1,
                        "description": TOP_K_HELP,
                        "default": settings.default_top_k,
                        "title": "Top K",
                    }
                elif parameter["name"] == "name" and parameter["in"] == "path":
                    parameter["schema"]["examples"] = [settings.default_model]
    return schema
