"""ASGI middleware around every route: request context (request id, trace context, access log,
metrics), the request-body byte limit, and API keys.
"""
