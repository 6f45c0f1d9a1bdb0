#!/usr/bin/env python3
"""The hot path with many named models (issue 22): /predict on the seed MLP, the
default model, in a process that also serves N named models, against the same
model in a process alone. Interleaved oha rounds on two servers up at once, so
both see the same machine.

Each named model is PyTorch's `linear.pt` fixture uploaded with
`POST /models/{name}/versions`; every one is checked to answer, and to answer
its own reference output, before the load starts.

Usage: many_models.py KILN_BINARY [N=50] [ROUNDS=3] [SECS=5]
Needs oha (`cargo install oha`). Prints req/s and p99 per round, the mean ratio
(many / alone), and each server's peak RSS.
Standard-library Python only.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(url, body=None, headers=None, method=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def serve(kiln, store, env=None, log=None):
    """Starts `kiln serve` on a free port with `store` (and `env` on top of this
    process's, logs to `log` if given); waits for readiness. (process, base URL)"""
    port = free_port()
    env = {**os.environ, "KILN_TELEMETRY__LEVEL": "warn", **(env or {})}
    out = log or subprocess.DEVNULL
    proc = subprocess.Popen([kiln, "serve", "--listen", f"127.0.0.1:{port}", "--store", store],
                            env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            call(base + "/health/ready")
            return proc, base
        except Exception:
            time.sleep(0.1)
    raise SystemExit("kiln did not become ready")


def upload(base, name, weights, config):
    boundary = uuid.uuid4().hex
    parts = []
    for field, filename, content in (("weights", "linear.pt", weights), ("config", "model.json", config)):
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                     f"filename=\"{filename}\"\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return call(f"{base}/models/{name}/versions", body,
                {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def oha(url, body, secs):
    out = subprocess.run(["oha", "-z", f"{secs}s", "-c", "64", "--no-tui", "--output-format", "json",
                          "-m", "POST", "-H", "Content-Type: application/json", "-d", body, url],
                         capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    ok = d.get("statusCodeDistribution", {}).get("200", 0)
    total = max(1, sum(d.get("statusCodeDistribution", {}).values()))
    return d["summary"]["requestsPerSec"] * ok / total, 1000 * d["latencyPercentiles"]["p99"]


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    kiln = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    secs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    if shutil.which("oha") is None and not (Path.home() / ".cargo/bin/oha").exists():
        raise SystemExit("needs oha: cargo install oha")
    os.environ["PATH"] += os.pathsep + str(Path.home() / ".cargo/bin")
    reference = json.loads((DATA / "pytorch" / "reference.json").read_text())["linear.pt"]
    config = json.dumps({"task": "regression", "architecture": {
        "kind": "sequential", "input_shape": reference["input_shape"], "layers": reference["layers"]}}).encode()
    weights = (DATA / "pytorch" / "linear.pt").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        stores = [os.path.join(tmp, "alone"), os.path.join(tmp, "many")]
        for store in stores:
            subprocess.run([kiln, "import", "--weights", str(DATA / "seed_mlp.safetensors"),
                            "--model-config", str(REPO / "config/models/seed-mlp.toml"), "--store", store],
                           check=True, capture_output=True)
        alone, alone_url = serve(kiln, stores[0])
        many, many_url = serve(kiln, stores[1])
        try:
            started = time.time()
            for i in range(n):
                upload(many_url, f"m{i:03d}", weights, config)
            made = time.time() - started
            for i in range(n):
                got = call(f"{many_url}/models/m{i:03d}/predict",
                           json.dumps({"instances": reference["input"]}).encode(),
                           {"Content-Type": "application/json"})["predictions"]
                for row, want in zip(got, reference["output"]):
                    assert all(abs(a - b) <= 1e-4 for a, b in zip(row, want)), (i, got)
            listed = call(f"{many_url}/models")["models"]
            assert len(listed) == n + 1, listed
            print(f"{n} named models uploaded in {made:.1f} s, each answering its reference")
            body = json.dumps({"instances": [[1.0] * 1000]})
            ratios = []
            for r in range(rounds):
                a = oha(alone_url + "/predict", body, secs)
                m = oha(many_url + "/predict", body, secs)
                ratios.append(m[0] / a[0])
                print(f"round {r + 1}: alone {a[0]:,.0f} req/s p99 {a[1]:.2f} ms | "
                      f"{n} models {m[0]:,.0f} req/s p99 {m[1]:.2f} ms | ratio {m[0] / a[0]:.3f}")
            print(f"mean ratio (with {n} models / alone): {sum(ratios) / len(ratios):.3f}")
            print(f"peak RSS: alone {peak_rss_mb(alone.pid):.0f} MB, {n} models {peak_rss_mb(many.pid):.0f} MB")
        finally:
            for p in (alone, many):
                p.terminate()
                p.wait()


if __name__ == "__main__":
    main()
