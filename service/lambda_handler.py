"""AWS Lambda entry point: ``service.lambda_handler.handler``.

The app and its models are built here, at import, which Lambda runs once per execution
environment during its init phase; ``lifespan="off"`` because Mangum would otherwise run the
ASGI lifespan on every invocation. Mangum translates API Gateway HTTP API (payload 2.0),
REST API (1.0), ALB and Function URL events (https://mangum.fastapiexpert.com/).
"""

from __future__ import annotations

from mangum import Mangum

from .app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
