#!/usr/bin/env python3
"""One model flooded, another lightly used (issue 22's fairness check): named
models A and B (both the seed MLP) in one process. B alone: a light client sends
one request at a time, RATE a second, for SECS seconds. Then the same while oha
floods A at c=C with ROWS rows a request (c=256 x 16 rows is 4x A's own
admission bound with the defaults, batching.model_queue_capacity = 1024). Prints B's p50 and p99 both ways, their ratio (the goal: B's p99
within 2x of its solo p99), and A's answers by status (the goal: A's excess is
429, nothing else). The flood runs twice: oha at the same CPU priority as kiln
and B's client, then at nice 19, standing for a load generator on other
machines (on a 2-core machine it otherwise takes the cores it floods).

Usage: flood.py KILN_BINARY [SECS=15] [RATE=50] [C=256] [ROWS=16]
Needs oha (`cargo install oha`). Standard-library Python otherwise.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_models import DATA, REPO, call, serve  # noqa: E402
from zipf_models import multipart  # noqa: E402


def light(port, secs, rate):
    """Latencies (ms) of B's requests, one at a time, `rate` a second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"instances": [[1.0] * 1000]})
    out, statuses = [], {}
    stop = time.time() + secs
    while time.time() < stop:
        t = time.perf_counter()
        conn.request("POST", "/models/b/predict", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        out.append((time.perf_counter() - t) * 1000)
        statuses[r.status] = statuses.get(r.status, 0) + 1
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t)))
    return sorted(out), statuses


def pct(xs, p):
    return xs[int(p * (len(xs) - 1))]


def main():
    kiln = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 15
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 50
    clients = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    rows = int(sys.argv[5]) if len(sys.argv) > 5 else 16
    os.environ["PATH"] += os.pathsep + str(Path.home() / ".cargo/bin")
    if shutil.which("oha") is None:
        raise SystemExit("needs oha: cargo install oha")
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        proc, base = serve(kiln, store, None)
        port = int(base.rsplit(':', 1)[1])
        try:
            for name in ("a", "b"):
                body, boundary = multipart([
                    ("weights", "seed_mlp.safetensors", (DATA / "seed_mlp.safetensors").read_bytes()),
                    ("config", "model.toml", (REPO / "config/models/seed-mlp.toml").read_bytes())])
                call(f"{base}/models/{name}/versions", body,
                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            solo, _ = light(port, secs, rate)
            print(f"B alone: p50 {pct(solo, 0.5):.2f} ms, p99 {pct(solo, 0.99):.2f} ms ({len(solo)} requests)")
            for nice in (0, 19):
                flooded(base, port, secs, rate, clients, rows, nice, solo)
        finally:
            proc.terminate()
            proc.wait()


def flooded(base, port, secs, rate, clients, rows, nice, solo):
    """B's latencies while oha (at `nice`) floods A; prints both sides."""
    flood = {}

    def run_oha():
        out = subprocess.run(
            ["nice", "-n", str(nice), "oha", "-z", f"{secs + 2}s", "-c", str(clients), "--no-tui", "--output-format", "json",
             "-m", "POST", "-H", "Content-Type: application/json",
             "-d", json.dumps({"instances": [[1.0] * 1000] * rows}), f"{base}/models/a/predict"],
            capture_output=True, text=True, check=True)
        flood.update(json.loads(out.stdout))

    t = threading.Thread(target=run_oha)
    t.start()
    time.sleep(1)
    loaded, b_statuses = light(port, secs, rate)
    t.join()
    print(f"oha at nice {nice}:")
    print(f"B beside A's flood: p50 {pct(loaded, 0.5):.2f} ms, p99 {pct(loaded, 0.99):.2f} ms "
          f"({len(loaded)} requests, statuses {b_statuses})")
    print(f"B's p99 ratio: {pct(loaded, 0.99) / pct(solo, 0.99):.2f} (goal <= 2)")
    dist = flood.get("statusCodeDistribution", {})
    print(f"A (oha, c={clients}, {rows} rows a request): {flood['summary']['requestsPerSec']:,.0f} req/s, "
          f"statuses {dist}")


if __name__ == "__main__":
    main()
