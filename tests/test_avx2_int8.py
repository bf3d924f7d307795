"""The bundled int8 model answers the same on an AVX2-only CPU (AWS Lambda x86_64's guarantee) as
on the CPU running the tests, whichever that is (AVX2, AVX-512 VNNI, AMX).

Why this can fail: on CPUs without VNNI, ONNX Runtime's u8s8 kernels multiply with
``vpmaddubsw``, whose int16 pair sums saturate for 8-bit weights; the manifests' 7-bit weights
(``reduce_range``) exist to avoid that. A model quantized without it loses accuracy on AVX2 only,
which no test on a VNNI machine sees. Here the same tensors run natively and under user-mode QEMU
as an Intel Haswell (AVX2, no AVX-512, no VNNI): ``qemu-x86_64-static -cpu Haswell``, which
ONNX Runtime's CPUID dispatch takes at its word.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from .package_support import require_tools
from .support import BUNDLED_MODELS, PROJECT_ROOT, mnist_test_digits

pytestmark = pytest.mark.shared_data

DIGITS = 1000
CHILD = """
import sys
import numpy as np, onnxruntime as ort
model, inputs, outputs = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = np.load(inputs)
np.save(outputs, session.run(None, {session.get_inputs()[0].name: x})[0])
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates an x86-64 CPU")
def test_bundled_digit_model_on_avx2_only_matches_this_cpu(tmp_path):
    qemu = shutil.which("qemu-x86_64-static")
    missing = [] if qemu else ["qemu-x86_64-static"]
    require_tools(missing, "apt-get install qemu-user-static", "AVX2 emulation")
    model = BUNDLED_MODELS / "mnist" / "mnist.int8.onnx"
    digits, labels = mnist_test_digits(DIGITS)
    # Clean MNIST digits already are the model's 28x28 canvas: ink high, scaled to [0, 1].
    tensors = (digits.astype(np.float32) / 255.0)[..., None]
    np.save(tmp_path / "x.npy", tensors)
    native = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    here = native.run(None, {native.get_inputs()[0].name: tensors})[0]

    done = subprocess.run(
        [qemu, "-cpu", "Haswell", sys.executable, "-c", CHILD, str(model), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    avx2 = np.load(tmp_path / "y.npy")

    # Saturation shows as lost accuracy, not as rounding: these bounds allow the last bit of a
    # different accumulation order and nothing more.
    agreement = float(np.mean(avx2.argmax(1) == here.argmax(1)))
    assert agreement >= 0.998, f"top-1 agreement AVX2 vs this CPU {agreement:.4f}"
    accuracy_here = float(np.mean(here.argmax(1) == labels))
    accuracy_avx2 = float(np.mean(avx2.argmax(1) == labels))
    assert accuracy_avx2 >= accuracy_here - 0.002, (accuracy_avx2, accuracy_here)
    assert float(np.abs(avx2 - here).max()) <= 0.02
