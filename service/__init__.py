"""Image-classification inference service: FastAPI + ONNX Runtime, no TensorFlow at serve time."""
