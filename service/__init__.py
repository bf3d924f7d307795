"""Image-classification inference service: FastAPI + ONNX Runtime, no TensorFlow at serve time."""

import os

# numpy's OpenBLAS would start a thread per core for the digit normaliser's small matrix
# products (service.images.preprocessing.digits) and map a fresh buffer for each: ONNX Runtime does
# the heavy compute, and the service's parallelism is its worker threads. Read by OpenBLAS when
# numpy is first imported, so it only takes effect when the service is imported before numpy
# (uvicorn service.app:app, the Lambda handler, the CLI); an explicit value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
