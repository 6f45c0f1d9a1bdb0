#!/usr/bin/env python3
"""ONNX Runtime's forward of the seed MLP, the peer of benches/forward.rs.

Builds the network (Gemm, Relu, Gemm, Relu, Gemm) from seed_mlp.safetensors, checks it
against seed_mlp.reference.json, then prints one JSON line per (threads, batch):
{"peer": "onnxruntime", "threads": T, "batch": B, "rows_per_s": R}.
Usage: onnx_forward.py SAFETENSORS REFERENCE_JSON SECONDS BATCH[,BATCH...] THREADS[,THREADS...]
Needs onnxruntime, onnx, numpy and safetensors (the bench installs them into a venv).
"""
import json, sys, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

weights_path, reference_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
batches = [int(b) for b in sys.argv[4].split(",")]
threads = [int(t) for t in sys.argv[5].split(",")]

w = load_file(weights_path)
nodes, inits, x = [], [], "x"
for i, layer in enumerate([0, 2, 4]):
    inits += [numpy_helper.from_array(w[f"{layer}.weight"], f"w{i}"),
              numpy_helper.from_array(w[f"{layer}.bias"], f"b{i}")]
    out = f"h{i}"
    # PyTorch's Linear: y = x W^T + b, W stored [out, in].
    nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [out], transB=1))
    x = out
    if i < 2:
        nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
        x = f"r{i}"
graph = helper.make_graph(nodes, "seed_mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1000])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", 1])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
data = model.SerializeToString()

# The reference outputs (seed_mlp.reference.json): the peer must compute the same network.
reference = json.load(open(reference_path))["outputs"]
i = np.arange(1000, dtype=np.float64)
inputs = {"ones": np.ones(1000), "ramp": i / 1000, "sin": np.sin(i)}
check = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
for name, want in reference.items():
    got = check.run(None, {"x": inputs[name].astype(np.float32).reshape(1, 1000)})[0].item()
    assert abs(got - want) < 1e-4, (name, got, want)

def session(n_threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = n_threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


for t in threads:
    s = session(t)
    for b in batches:
        x = (np.arange(b * 1000, dtype=np.float32) % 97 / 97).reshape(b, 1000)
        for _ in range(20):
            s.run(None, {"x": x})
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            s.run(None, {"x": x})
            n += 1
        print(json.dumps({"peer": "onnxruntime", "threads": t, "batch": b,
                          "rows_per_s": round(n * b / (time.perf_counter() - t0))}), flush=True)
