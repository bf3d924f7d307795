"""Benchmarks (not tests): cold start, warm latency and throughput against the TensorFlow baseline.

Run with ``make bench`` (or ``python -m benchmarks --help``); results go to
``benchmarks/results/`` and the table into ``benchmarks/README.md``. The standalone benchmarks
are in folders by what they measure: ``startup``, ``http``, ``in_process``, ``accuracy``,
``digits``, ``memory`` (``benchmarks/README.md``, "Layout"). What the tests use too is in
``tests/harness``.
"""
