"""Protocol adapters: each parses its wire format into engine calls and encodes the outcome.

``native`` (upload, raw body, JSON), ``batch``, ``number``, ``v1`` (KServe V1 / TF-Serving),
``v2`` (Open Inference Protocol), ``pages`` (the web page and /docs); shared pieces in
``parameters``, ``uploads``, ``schemas``, ``openapi``, ``encoding``, and the codecs in
``protocols``.
"""
