"""Exact-string accuracy of the number reader, in-process, per spacing: for tuning on MNIST
*train* digits (``--split train``, the default) and for checking on the test digits the HTTP
test uses (``--split test``: test digits 2,000-2,599, seed 2026, as tests/test_number_http.py).

Reads each photo as ``POST /models/{name}/number`` does (``read_number`` with the bundled
model). Command: ``nice -n 10 python -m benchmarks.digit_numbers --split train --digits 1000``.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from service.engine.numbers import read_number
from service.engine.registry import load_registry
from tests.harness.digit_scenes import render_numbers
from tests.harness.paths import MNIST_NPZ, PROJECT_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--errors", action="store_true", help="print the numbers read wrong")
    args = parser.parse_args()
    with np.load(MNIST_NPZ) as data:
        if args.split == "test":
            digits, labels, seed = data["x_test"][2000:2600], data["y_test"][2000:2600], 2026
        else:
            digits, labels, seed = data["x_train"][: args.digits], data["y_train"][: args.digits], args.seed
    model = load_registry(PROJECT_ROOT / "models_onnx", 1).ready["mnist"]
    hits: dict[str, list[bool]] = collections.defaultdict(list)
    for photo in render_numbers(digits, labels, seed):
        read = read_number(model, photo.jpeg, 50_000_000, 1)
        number = "".join(ranked[0].label for _, ranked in read.digits)
        hits[photo.conditions["spacing"]].append(number == photo.number)
        if args.errors and number != photo.number:
            print(f"{photo.conditions['spacing']:9s} written {photo.number:6s} read {number}")
    everything = [h for kind in hits.values() for h in kind]
    summary = ", ".join(f"{kind} {np.mean(h):.3f} of {len(h)}" for kind, h in sorted(hits.items()))
    print(f"{args.split}: exact {np.mean(everything):.3f} of {len(everything)}; {summary}")


if __name__ == "__main__":
    main()
