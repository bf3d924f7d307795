"""Accuracy: the int8 quantization sweep (every model family and format, with batch-1 latency) and
decoding only what the model needs on phone-size photos."""
