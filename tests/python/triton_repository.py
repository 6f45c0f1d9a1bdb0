"""Drives named models on a running kiln with NVIDIA's official Triton HTTP client:
the repository index, unload, load, readiness and inference by model name.

Usage: triton_repository.py HOST:PORT FIRST SECOND WIDTH
Prints one JSON object with what the client saw, for the Rust test to check.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient


def infer(client, name, rows):
    tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=True)
    result = client.infer(name, [tensor])
    return {"model_version": result.get_response()["model_version"],
            "output": result.as_numpy("output").tolist()}


def main():
    url, first, second, width = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = httpclient.InferenceServerClient(url=url)
    rows = (np.arange(2 * width, dtype=np.float32).reshape(2, width) % 7) / 7.0 - 0.5
    seen = {"rows": rows.tolist(), "index": client.get_model_repository_index()}
    client.unload_model(first)
    seen["after_unload"] = {
        "index": client.get_model_repository_index(),
        "ready": client.is_model_ready(first),
    }
    # An unloaded model loads again on its next request.
    seen["first"] = infer(client, first, rows)
    seen["first_ready"] = client.is_model_ready(first)
    client.unload_model(second)
    client.load_model(second)
    seen["second_ready"] = client.is_model_ready(second)
    seen["second"] = infer(client, second, rows)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
