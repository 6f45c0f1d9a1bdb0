"""Drives a running kiln with KServe's own Python client (kserve.InferenceRESTClient,
Open Inference Protocol v2).

Usage: kserve_client.py BASE_URL MODEL_NAME WIDTH
Prints one JSON object with what the client saw, for the Rust test to check.
"""
import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main():
    base, name, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = InferenceRESTClient(config=RESTConfig(protocol="v2", retries=0, timeout=30))
    seen = {
        "live": await client.is_server_live(base),
        "ready": await client.is_server_ready(base),
        "model_ready": await client.is_model_ready(base, name),
        "infer": [],
    }
    for n in (1, 5):
        rows = (np.arange(n * width, dtype=np.float32).reshape(n, width) % 7) / 7.0 + 4.0
        for binary in (False, True):
            tensor = InferInput("input", [n, width], "FP32")
            tensor.set_data_from_numpy(rows, binary_data=binary)
            request = InferRequest(name, [tensor], request_id=f"kserve-{n}-{binary}")
            headers = {}
            response = await client.infer(base, request, model_name=name, response_headers=headers)
            outputs = {
                o.name: [
                    v.decode() if isinstance(v, bytes) else v for v in o.as_numpy().tolist()
                ]
                for o in response.outputs
            }
            seen["infer"].append(
                {
                    "rows": rows.tolist(),
                    "binary_input": binary,
                    "id": response.id,
                    "model_version": response.model_version,
                    "header_version": headers.get("x-model-version"),
                    "outputs": outputs,
                }
            )
    await client.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main())
