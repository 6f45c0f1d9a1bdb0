#!/usr/bin/env python3
"""Does unloading a named model give its memory back? (issue 22: RSS returns within
10% of its level before the load.)

Uploads one large named MLP (WIDTH wide, two hidden layers: about 4 x WIDTH^2
bytes of weights), then, ROUNDS times: unloads it (Triton's repository
`unload`), reads kiln's RSS, sends one request (which loads it again), reads RSS.
Prints RSS before the model existed, loaded and unloaded each round, and whether
every unloaded reading after a reload is within 10% of the first unloaded one
(the model exists, its weights are not loaded).

Usage: unload_rss.py KILN_BINARY [WIDTH=4096] [ROUNDS=5]
Standard-library Python only (the weights are written as safetensors by hand).
"""
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_models import call, serve  # noqa: E402
from zipf_models import multipart, rss_mb  # noqa: E402


def safetensors(shapes):
    """A safetensors file of f32 tensors, `name -> shape`, filled with small values."""
    header, blobs, offset = {}, [], 0
    for name, shape in shapes.items():
        count = 1
        for d in shape:
            count *= d
        blob = struct.pack("<f", 0.001) * count
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def main():
    kiln = sys.argv[1]
    width = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    inputs = 64
    shapes = {"0.weight": [width, inputs], "0.bias": [width], "2.weight": [width, width],
              "2.bias": [width], "4.weight": [1, width], "4.bias": [1]}
    weights = safetensors(shapes)
    config = (f'task = "regression"\n[architecture]\nkind = "mlp"\ninput = {inputs}\n'
              f'hidden = [{width}, {width}]\noutput = 1\n').encode()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        proc, base = serve(kiln, store, {"KILN_SERVER__MAX_UPLOAD_BYTES": str(len(weights) + (1 << 20))})
        port = int(base.rsplit(':', 1)[1])
        try:
            time.sleep(1)
            before = rss_mb(proc.pid)
            body, boundary = multipart([("weights", "big.safetensors", weights),
                                        ("config", "model.toml", config)])
            call(f"{base}/models/big/versions", body,
                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            del body
            request = json.dumps({"instances": [[1.0] * inputs]}).encode()
            print(f"weights: {len(weights) / 2**20:.0f} MB; RSS before the model: {before:.0f} MB")
            unloaded = []
            for r in range(rounds):
                time.sleep(0.5)
                loaded = rss_mb(proc.pid)
                call(f"{base}/v2/repository/models/big/unload", b"{}", {"Content-Type": "application/json"})
                # kiln trims within a second after an unload.
                time.sleep(1.5)
                unloaded.append(rss_mb(proc.pid))
                call(f"{base}/models/big/predict", request, {"Content-Type": "application/json"})
                print(f"round {r + 1}: loaded {loaded:.0f} MB, unloaded {unloaded[-1]:.0f} MB")
            # The model's own threads and buffers (manager, prediction log, monitor)
            # stay while it exists: the level before a load is the first unloaded one.
            base_level, worst = unloaded[0], max(unloaded[1:] or unloaded)
            print(f"after each reload and unload: at most {worst:.0f} MB against {base_level:.0f} MB "
                  f"unloaded before the first reload: "
                  f"{'within' if worst <= 1.1 * base_level else 'NOT within'} 10%; "
                  f"{worst - before:.0f} MB above the process before the model existed")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
