"""The API Gateway event builders live in ``benchmarks.lambda_events`` (the benchmarks send the
same events and may not import from tests/); re-exported here for the tests."""

from benchmarks.lambda_events import (  # noqa: F401
    LambdaContext,
    http_api_v2_event,
    multipart,
    rest_api_v1_event,
)
