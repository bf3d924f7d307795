"""AWS Lambda entry point: ``service.lambda_handler.handler``.

The app and its models are built here, at import, which Lambda runs once per execution
environment during its init phase; ``lifespan="off"`` because Mangum would otherwise run the
ASGI lifespan on every invocation. Mangum translates API Gateway HTTP API (payload 2.0),
REST API (1.0), ALB and Function URL events (https://mangum.fastapiexpert.com/).

Lambda SnapStart (Python 3.12+, https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html):
when a version is published, Lambda runs this init once, calls the ``register_before_snapshot``
hooks, snapshots memory, and later starts environments from the snapshot, calling the
``register_after_restore`` hooks first (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html).
``snapshot_restore_py`` is part of the Lambda Python runtime; elsewhere, when it is absent, no
hook is registered and nothing changes.
"""

from __future__ import annotations

import gc

# Everything allocated from here to the end of init (modules, classes, routes, the models) lives
# as long as the execution environment: the cyclic collector would only re-scan it, over a
# hundred times in a cold start (benchmarks/startup/cold_start.py times the init phase). It is off until the
# app is built, then the survivors are frozen (gc.freeze: moved to a generation it never scans)
# and it runs as usual for the requests' own garbage.
gc.disable()

import io  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402

from mangum import Mangum  # noqa: E402

from service.app import create_app  # noqa: E402
from service.engine.pipeline import EncodedImages, classify  # noqa: E402
from service.engine.registry import ModelRegistry  # noqa: E402

try:
    app = create_app(defer_protocols=True)
    handler = Mangum(app, lifespan="off")
finally:
    gc.freeze()
    gc.enable()


def warm_sessions(registry: ModelRegistry) -> list[str]:
    """Run every ready model once on a small grey JPEG, through the engine's whole chain
    (``service.engine.pipeline.classify``: decode, preprocess, inference, ranking).

    ONNX Runtime allocates and prepacks kernels, and Pillow / numpy initialise their codecs, on
    the first run; done before the snapshot, that work is inside it instead of in the first
    request after each restore.

    Returns:
        The names of the models warmed, in registry order.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buf, "JPEG")
    warmed = []
    for name, model in registry.ready.items():
        classify(model, EncodedImages([buf.getvalue()]), 1, max_pixels=64 * 64)
        warmed.append(name)
    return warmed


def refresh_after_restore() -> None:
    """Re-seed what every restored copy of the snapshot would otherwise share.

    Python's ``random`` state is in the snapshot, so every environment restored from it would
    draw the same numbers; it is re-seeded from ``os.urandom``. Request ids are ``uuid4``
    (``os.urandom``) or API Gateway's, and logs take the time per record, so neither needs more.
    """
    random.seed(os.urandom(32))


try:  # in the Lambda Python runtime (and awslambdaric); optional everywhere else
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    register_before_snapshot(warm_sessions, app.state.registry)
    register_after_restore(refresh_after_restore)
