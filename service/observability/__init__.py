"""What the service reports about itself: Prometheus metrics, JSON logs, CloudWatch EMF lines,
OpenTelemetry spans, W3C / X-Ray trace context and per-request stage timings. No web framework.
"""
