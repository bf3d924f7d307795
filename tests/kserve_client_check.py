"""Manual check: the ``kserve`` SDK's REST client (V1 and V2) against a running server.

Not collected by pytest: the kserve SDK pins ``psutil<6`` and cannot share the project's dev
environment (psutil 7). Run it from an environment with ``pip install kserve``::

    uvicorn service.app:app --port 8000 &      # from the project's venv
    python tests/kserve_client_check.py http://127.0.0.1:8000

It sends 8 real MNIST test digits as raw bytes (V2 binary tensor data), as base64 JSON (V2) and
as V1 ``image_bytes.b64`` instances, and prints the predicted classes next to the labels.
"""

import asyncio
import base64
import io
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from PIL import Image

url = sys.argv[1]
with np.load(sys.argv[2] if len(sys.argv) > 2 else "../shared/data/mnist/mnist.npz") as d:
    digits, labels = d["x_test"][:8], d["y_test"][:8]
pngs = []
for x in digits:
    b = io.BytesIO()
    Image.fromarray(x).save(b, format="PNG")
    pngs.append(b.getvalue())


async def main():
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    inp = InferInput(name="image_bytes", shape=[8], datatype="BYTES")
    inp.set_data_from_numpy(np.array(pngs, dtype=np.object_), binary_data=True)
    req = InferRequest(model_name="mnist", infer_inputs=[inp], request_id="ks-1")
    res = await v2.infer(url, req, model_name="mnist")
    probs = res.outputs[0].as_numpy()
    print("v2 binary:", res.id, probs.shape, probs.argmax(1).tolist(), "labels", labels.tolist())
    inp = InferInput(name="image_bytes", shape=[8], datatype="BYTES")
    inp.set_data_from_numpy(
        np.array([base64.b64encode(p) for p in pngs], dtype=np.object_), binary_data=False
    )
    res = await v2.infer(url, InferRequest(model_name="mnist", infer_inputs=[inp]), model_name="mnist")
    print("v2 json:", res.outputs[0].as_numpy().argmax(1).tolist())
    print("v2 ready:", await v2.is_server_ready(url), await v2.is_model_ready(url, "mnist"))
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
    res = await v1.infer(
        url,
        {"instances": [{"image_bytes": {"b64": base64.b64encode(p).decode()}} for p in pngs]},
        model_name="mnist",
    )
    print("v1:", [p["class_index"] for p in res["predictions"]])
    await v2.close()
    await v1.close()


asyncio.run(main())
