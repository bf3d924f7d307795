"""CloudWatch Embedded Metric Format: one JSON line per request on stdout (``EDGE_EMF``).

On Lambda, stdout goes to CloudWatch Logs, which turns every line carrying an ``_aws`` metadata
object into metrics -- no agent, no API call, nothing added to the request's latency
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
It is Lambda's counterpart of ``/metrics`` (off there: nothing scrapes an execution environment).

Each line has two metric directives in the namespace ``edge-infer`` (``NAMESPACE``):

- dimensions ``[Service, FunctionVersion]``: ``Requests``, ``Errors4xx``, ``Errors5xx``
  (Count, 0 or 1) and ``RequestLatency`` (Milliseconds). Per version, so a canary deployment's
  alarm watches the new version alone (``infra/sam/template.yaml``).
- dimensions ``[Service, Model, StatusClass]``, only for requests that named a known model:
  ``RequestLatency`` and, for the stages the request went through, ``DecodeLatency``,
  ``PreprocessLatency``, ``InferenceLatency`` (ONNX Runtime calls only), all Milliseconds.

``Service`` is ``AWS_LAMBDA_FUNCTION_NAME`` (else ``edge-infer``), ``FunctionVersion`` is
``AWS_LAMBDA_FUNCTION_VERSION`` (else ``$LATEST``), ``StatusClass`` is ``2xx``...``5xx``. The line
also carries ``Route``, ``Method``, ``Status``, ``request_id``, ``trace_id`` as plain properties,
searchable in Logs Insights but not metrics (each dimension value is a billed metric).
The Prometheus equivalents: ``edge_http_requests_total``, ``edge_model_errors_total``,
``edge_http_request_duration_seconds`` / ``edge_model_request_duration_seconds``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

from service.observability.metrics import RequestRecord
from service.observability.stages import DECODE, INFERENCE, PREPROCESS, StageTimes

MILLISECONDS = "Milliseconds"
COUNT = "Count"
NAMESPACE = "edge-infer"
_STAGE_METRICS = (
    (DECODE, "DecodeLatency"),
    (PREPROCESS, "PreprocessLatency"),
    (INFERENCE, "InferenceLatency"),
)


class EmfWriter:
    """Writes one EMF line per finished request to ``stream`` (default: stdout at write time)."""

    def __init__(
        self,
        namespace: str = NAMESPACE,
        service: str | None = None,
        version: str | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.namespace = namespace
        self.service = service or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "edge-infer")
        self.version = version or os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self._stream = stream

    def document(
        self,
        record: RequestRecord,
        times: StageTimes,
        request_id: str | None = None,
        trace_id: str | None = None,
        timestamp_ms: int | None = None,
    ) -> dict[str, Any]:
        """The EMF document (a JSON object) for one request."""
        latency_ms = round(record.seconds * 1000.0, 3)
        doc: dict[str, Any] = {
            "Service": self.service,
            "FunctionVersion": self.version,
            "Requests": 1,
            "Errors4xx": int(400 <= record.status < 500),
            "Errors5xx": int(record.status >= 500),
            "RequestLatency": latency_ms,
        }
        directives: list[dict[str, Any]] = [
            {
                "Namespace": self.namespace,
                "Dimensions": [["Service", "FunctionVersion"]],
                "Metrics": [
                    {"Name": "Requests", "Unit": COUNT},
                    {"Name": "Errors4xx", "Unit": COUNT},
                    {"Name": "Errors5xx", "Unit": COUNT},
                    {"Name": "RequestLatency", "Unit": MILLISECONDS},
                ],
            }
        ]
        if record.model is not None:
            doc["Model"] = record.model
            doc["StatusClass"] = f"{min(record.status // 100, 5)}xx"
            metrics = [{"Name": "RequestLatency", "Unit": MILLISECONDS}]
            for stage, name in _STAGE_METRICS:
                if stage in times.seconds:
                    doc[name] = round(times.seconds[stage] * 1000.0, 3)
                    metrics.append({"Name": name, "Unit": MILLISECONDS})
            directives.append(
                {
                    "Namespace": self.namespace,
                    "Dimensions": [["Service", "Model", "StatusClass"]],
                    "Metrics": metrics,
                }
            )
        doc.update(Route=record.route, Method=record.method, Status=record.status)
        if times.batch_size:
            doc["BatchSize"] = times.batch_size
        if request_id:
            doc["request_id"] = request_id
        if trace_id:
            doc["trace_id"] = trace_id
        stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        return {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": directives}, **doc}

    def write(
        self, record: RequestRecord, times: StageTimes, request_id: str | None, trace_id: str | None
    ) -> None:
        """One line, flushed (Lambda may freeze the environment right after the response)."""
        stream = self._stream or sys.stdout
        stream.write(
            json.dumps(self.document(record, times, request_id, trace_id), separators=(",", ":")) + "\n"
        )
        stream.flush()
