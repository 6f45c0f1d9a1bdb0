#!/usr/bin/env python3
"""Many named models within a memory budget (issue 22): N models of three
architectures (the seed MLP from safetensors, PyTorch's `conv2d.pt` CNN and
`lstm.pt` LSTM fixtures) in one process whose `serving.max_loaded_mb` fits about
10 of them (the default model's weights included). C client threads pick a model
per request from a Zipf law (rank k with weight 1/k^1.2: the first 10 ranks
take most of the traffic) for SECS seconds. Every answer is checked against its
model's reference output.

Reports, for hot (the 10 first ranks) and cold models: requests/s and p99; the
loads and unloads (from the server's log), the peak RSS and the weights' budget;
and every answer that was not a 200, by status. A 503 must carry Retry-After
(a load that did not finish inside the request's deadline).

Usage: zipf_models.py KILN_BINARY [N=50] [SECS=60] [C=64]
Standard-library Python only (the clients are threads: they, not kiln, may be
the limit on requests/s).
"""
import http.client
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_models import DATA, REPO, call, peak_rss_mb, serve  # noqa: E402

SEED_MLP_BYTES = ((1000 + 1) * 500 + (500 + 1) * 100 + (100 + 1) * 1) * 4
HOT = 10


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def multipart(files):
    import uuid
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
             f"filename=\"{filename}\"\r\n\r\n".encode() + content + b"\r\n"
             for field, filename, content in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def kinds():
    """(weights file name, weights, config file name, config, request body, expected outputs)"""
    ref = json.loads((DATA / "pytorch" / "reference.json").read_text())
    seed_ref = json.loads((DATA / "seed_mlp.reference.json").read_text())
    out = [("seed_mlp.safetensors", (DATA / "seed_mlp.safetensors").read_bytes(), "model.toml",
            (REPO / "config/models/seed-mlp.toml").read_bytes(),
            {"instances": [[1.0] * 1000]}, [seed_ref["outputs"]["ones"]])]
    for fixture in ("conv2d.pt", "lstm.pt"):
        r = ref[fixture]
        config = {"task": "regression", "architecture": {
            "kind": "sequential", "input_shape": r["input_shape"], "layers": r["layers"]}}
        out.append((fixture, (DATA / "pytorch" / fixture).read_bytes(), "model.json",
                    json.dumps(config).encode(), {"instances": r["input"]}, r["output"]))
    return out


def flat(v):
    return [x for i in v for x in flat(i)] if isinstance(v, list) else [v]


def main():
    kiln = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    clients = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    kind = kinds()
    models = [f"m{i:03d}" for i in range(n)]
    zipf = [1 / (k + 1) ** 1.2 for k in range(n)]
    order = list(range(n))
    random.Random(7).shuffle(order)  # which models are hot: not the first uploaded
    # Model i is of kind i % 3 (the seed MLP's 2.2 MB, or a fixture's few bytes).
    # The budget fits the default model and the 10 hot ones, and 1 MB more.
    hot_bytes = sum(SEED_MLP_BYTES if order[r] % 3 == 0 else 0 for r in range(HOT))
    budget_mb = math.ceil((SEED_MLP_BYTES + hot_bytes) / 2**20) + 1
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        subprocess.run([kiln, "import", "--weights", str(DATA / "seed_mlp.safetensors"),
                        "--model-config", str(REPO / "config/models/seed-mlp.toml"), "--store", store],
                       check=True, capture_output=True)
        log = open(os.path.join(tmp, "kiln.log"), "w")
        env = {"KILN_TELEMETRY__LEVEL": "info", "KILN_TELEMETRY__ACCESS_LOG": "false",
               "KILN_SERVING__MAX_LOADED_MB": str(budget_mb)}
        proc, base = serve(kiln, store, env, log)
        port = int(base.rsplit(':', 1)[1])
        try:
            for i, name in enumerate(models):
                wname, weights, cname, config, _, _ = kind[i % 3]
                body, boundary = multipart([("weights", wname, weights), ("config", cname, config)])
                call(f"{base}/models/{name}/versions", body,
                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            mlps = len(range(0, n, 3))
            print(f"{n} models ({mlps} seed MLPs, the rest CNN and LSTM fixtures), "
                  f"serving.max_loaded_mb = {budget_mb} (the default model, the 10 hot ones, 1 MB)")
            bodies = [json.dumps(k[4]).encode() for k in kind]
            stop = time.time() + secs
            results = [[] for _ in range(clients)]

            def client(c):
                rng = random.Random(c)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while time.time() < stop:
                    rank = rng.choices(range(n), zipf)[0]
                    i = order[rank]
                    t = time.perf_counter()
                    conn.request("POST", f"/models/{models[i]}/predict", bodies[i % 3],
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    ms = (time.perf_counter() - t) * 1000
                    ok = r.status == 200
                    if ok:
                        got = flat(json.loads(data)["predictions"])
                        want = flat(kind[i % 3][5])
                        ok = len(got) == len(want) and all(abs(a - b) <= 1e-4 for a, b in zip(got, want))
                        if not ok:
                            raise SystemExit(f"{models[i]} answered {got[:4]}, not {want[:4]}")
                    retry = r.getheader("Retry-After")
                    results[c].append((rank < HOT, r.status, ms, retry))

            before = rss_mb(proc.pid)
            samples = []

            def sample():
                while time.time() < stop:
                    samples.append(rss_mb(proc.pid))
                    time.sleep(0.25)

            threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
            threads.append(threading.Thread(target=sample))
            started = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.time() - started
            every = [x for r in results for x in r]
            for label, hot in (("hot (10 first ranks)", True), ("cold", False)):
                mine = [x for x in every if x[0] == hot]
                ok = sorted(x[2] for x in mine if x[1] == 200)
                p99 = ok[int(0.99 * (len(ok) - 1))] if ok else float("nan")
                print(f"{label}: {len(ok) / took:,.0f} req/s answered, p99 {p99:.1f} ms, "
                      f"{len(mine)} requests")
            statuses = {}
            for x in every:
                statuses[x[1]] = statuses.get(x[1], 0) + 1
            print(f"statuses: {dict(sorted(statuses.items()))}")
            bad_503 = sum(1 for x in every if x[1] == 503 and x[3] is None)
            print(f"503s without Retry-After: {bad_503}")
            text = Path(os.path.join(tmp, "kiln.log")).read_text()
            print(f"loads on demand: {text.count('loaded on demand')}, "
                  f"unloads for room: {text.count('unloaded to stay within')}")
            print("RSS samples (MB, every 5 s):", [round(s) for s in samples[::20]])
            print(f"RSS: {before:.0f} MB with every model made, {max(samples):.0f} MB at most under load, "
                  f"{samples[-1]:.0f} MB at the end; peak over the whole run {peak_rss_mb(proc.pid):.0f} MB")
            others = {s: c for s, c in statuses.items() if s not in (200, 503)}
            if others or bad_503:
                for line in text.splitlines():
                    if "ERROR" in line or "WARN" in line:
                        print(line[:300])
                raise SystemExit(f"errors: {others}, 503s without Retry-After: {bad_503}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
