"""In one process, no HTTP: warm inference (Keras vs ONNX Runtime fp32 vs int8), ONNX Runtime beside
OpenVINO, and the image preprocessing against the path it replaced."""
