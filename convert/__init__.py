"""Model conversion: train or load Keras models, export to ONNX, quantize to int8, validate.

Heavy (TensorFlow, tf2onnx, onnx); never imported by ``service/``. Run ``python -m convert -h``.
"""
