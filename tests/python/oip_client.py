"""Drives a running kiln with NVIDIA's official Triton HTTP client (tritonclient).

Usage: oip_client.py HOST:PORT MODEL_NAME WIDTH
Prints one JSON object with what the client saw, for the Rust test to check.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient


def main():
    url, name, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = httpclient.InferenceServerClient(url=url)
    seen = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(name),
        "server_metadata": client.get_server_metadata(),
        "model_metadata": client.get_model_metadata(name),
        "model_config": client.get_model_config(name),
        "infer": [],
    }
    for n in (1, 8):
        rows = (np.arange(n * width, dtype=np.float32).reshape(n, width) % 13) / 13.0 - 0.5
        for binary in (False, True):
            tensor = httpclient.InferInput("input", [n, width], "FP32")
            tensor.set_data_from_numpy(rows, binary_data=binary)
            wanted = [httpclient.InferRequestedOutput("output", binary_data=False)]
            result = client.infer(name, [tensor], outputs=wanted, request_id=f"req-{n}-{binary}")
            response = result.get_response()
            seen["infer"].append(
                {
                    "rows": rows.tolist(),
                    "binary_input": binary,
                    "id": response.get("id"),
                    "model_version": response["model_version"],
                    "output": result.as_numpy("output").tolist(),
                }
            )
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
