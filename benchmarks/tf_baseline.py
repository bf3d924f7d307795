"""The baseline users have today: the Keras model served by FastAPI with TensorFlow.

Written the way the classic tutorials do it (load the model at import, ``UploadFile``, Pillow,
``model.predict``); run as ``uvicorn benchmarks.tf_baseline:app`` with ``BASELINE_KERAS_MODEL``
(a ``.keras`` file) and ``BASELINE_MANIFEST`` (the ONNX model's manifest, for the labels and the
preprocessing). It reuses the service's numpy/Pillow preprocessing so that both sides compute
the same input tensor and the comparison isolates TensorFlow + Keras against ONNX Runtime.
Benchmark-only code: ``service/`` never imports TensorFlow.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import tensorflow as tf
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from benchmarks.decision import top1
from service.images.preprocessing import preprocess
from service.manifest import Manifest

model = tf.keras.models.load_model(os.environ["BASELINE_KERAS_MODEL"])
manifest = Manifest.model_validate_json(Path(os.environ["BASELINE_MANIFEST"]).read_bytes())
app = FastAPI(title="TensorFlow baseline")


@app.post("/predict")
async def predict(file: UploadFile = File(...)) -> dict:  # noqa: B008 - FastAPI's idiom
    image = Image.open(io.BytesIO(await file.read()))
    scores = model.predict(preprocess(image, manifest), verbose=0)[0]
    index, confidence = top1(scores, manifest)
    return {"prediction": manifest.labels[index], "class_index": index, "confidence": confidence}
