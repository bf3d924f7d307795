"""Wire codecs for the standard inference protocols, free of any web framework.

- ``oip``: the Open Inference Protocol REST API (KServe V2 / Triton), with Triton's binary
  tensor data and classification extensions.
- ``tfserving``: the TF-Serving / KServe V1 ``{"instances": [...]}`` JSON API.

Each turns request bytes into images (encoded files) or an already-preprocessed tensor, and
class probabilities back into the protocol's response. The HTTP routes (``service.api.v2``,
``service.api.v1``) hand what they parse to the engine (``service.engine.pipeline``).
"""
