"""The engine: models and how they run, with no web framework (import-linter keeps it so).

``registry`` loads and verifies models, ``pipeline`` is the one preprocess -> predict ->
postprocess chain, ``admission`` schedules requests onto worker threads (and, off Lambda, the
``dynamic_batching`` queues), ``numbers`` reads a row of digits; ``inference``, ``contract``,
``cpus`` and ``model_sources`` are what those build on. docs/architecture.md has the layers.
"""
