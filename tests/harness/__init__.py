"""The harness shared by the tests and the benchmarks: what runs the service and feeds it.

- ``paths``: the repository's and ``../shared/data``'s paths.
- ``servers``: a server process on a free loopback port (start, wait until ready, stop) and its
  CPU time.
- ``runtime_api``: a Lambda Runtime API on loopback, to drive awslambdaric outside AWS.
- ``lambda_events``: real API Gateway event payloads (HTTP API 2.0, REST API 1.0) and a context.
- ``load``: the concurrent load generator (``tests/test_load.py``; ``python -m benchmarks.http.load``).
- ``photos``: 12 MP phone-weight JPEGs made from real photos.
- ``digit_photos``, ``digit_scenes``: seeded phone photos of MNIST digits and numbers.
- ``stats``: percentiles.
- ``report``: benchmark results (``benchmarks/results/results.json``) as tables and a chart, for
  ``make bench``, the documentation site (docs/hooks.py) and tests/test_docs.py.

Tests and benchmarks import from here; nothing here imports ``benchmarks`` or the tests'
own modules (``tests/test_import_layers.py`` and ``lint-imports`` check both).
"""
