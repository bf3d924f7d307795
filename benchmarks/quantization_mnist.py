"""Alias kept for old commands: the quantization sweep for the digit model only.

    .venv/bin/python -m benchmarks.quantization_mnist [--models-dir DIR] [...]

Same flags as ``python -m benchmarks.quantization`` (which sweeps every family); see there.
"""

from __future__ import annotations

from .quantization import main

if __name__ == "__main__":
    main(default_families=("mnist",))
