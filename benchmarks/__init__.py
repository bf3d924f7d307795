"""Benchmarks (not tests): cold start, warm latency and throughput against the TensorFlow baseline.

Run with ``make bench`` (or ``python -m benchmarks --help``); results go to
``benchmarks/results/`` and the table into ``benchmarks/README.md``.
"""
