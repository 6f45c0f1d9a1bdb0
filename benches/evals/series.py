#!/usr/bin/env python3
"""Recurrent defaults against a linear AR(12) on univariate series (issue 21).

For each series: windows of 12 lags (oldest first) and the next value; the last
20% of rows, in time order, held out (`validation_last`). AR(12) with an
intercept by least squares on the rest; then `kiln train` with a recipe that
names only the model (LSTM or GRU, hidden 32), the split and `promote`, and the
R² it reports on the held-out rows (in raw units). Prints one JSON line per
series, with the level kiln chose.

Series: `seasonal:SEED` and `trend:SEED` are generated (AR(1) noise, phi 0.6);
`co2`, `sunspots`, `nile`, `elnino` come from statsmodels' datasets.

Usage: series.py KILN_BINARY SERIES... [--extra 'toml line' ...]
  e.g. series.py target/release/kiln seasonal:1 trend:2 co2 sunspots
       series.py target/release/kiln co2 --extra 'search = { trials = 8 }'
Needs numpy (and statsmodels for the real series).
"""
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LAGS = 12


def generated(kind, seed, n=600):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.6 * e[i - 1] + rng.normal()
    if kind == "seasonal":
        return 20 + 5 * np.sin(2 * np.pi * t / 12) + 2 * np.cos(2 * np.pi * t / 6) + e
    return 5 + 0.05 * t + 1.5 * np.sin(2 * np.pi * t / 12) + e


def real(name):
    import statsmodels.api as sm

    if name == "co2":
        return sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate().values
    if name == "sunspots":
        return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].values
    if name == "nile":
        return sm.datasets.nile.load_pandas().data["volume"].values
    if name == "elnino":
        return sm.datasets.elnino.load_pandas().data.iloc[:, 1:].values.ravel()
    raise SystemExit(f"unknown series {name}")


def ar_r2(x, y, train):
    a = np.hstack([x, np.ones((len(y), 1))])
    coef, *_ = np.linalg.lstsq(a[:train], y[:train], rcond=None)
    pred = a[train:] @ coef
    return 1 - ((y[train:] - pred) ** 2).sum() / ((y[train:] - y[train:].mean()) ** 2).sum()


def model(layer):
    return (
        f'model = {{ kind = "sequential", input_shape = [{LAGS}, 1], layers = [ '
        f'{{ type = "{layer}", input_size = 1, hidden_size = 32, batch_first = true }}, '
        '{ type = "select", dim = 1, index = -1 }, '
        '{ type = "linear", in_features = 32, out_features = 1 } ] }\n'
    )


def run(kiln, name, series, extra, work):
    series = np.asarray(series, dtype=float)
    x = np.stack([series[i : i + LAGS] for i in range(len(series) - LAGS)])
    y = series[LAGS:]
    held_out = int(round(0.2 * len(y)))
    train = len(y) - held_out
    csv = work / f"{name}.csv"
    with open(csv, "w") as f:
        f.write(",".join(f"l{i}" for i in range(LAGS)) + ",target\n")
        for row, target in zip(x, y):
            f.write(",".join(f"{v:.6g}" for v in row) + f",{target:.6g}\n")
    out = {"series": name, "rows": len(y), "ar12": round(ar_r2(x, y, train), 4)}
    for layer in ["lstm", "gru"]:
        recipe = work / "recipe.toml"
        recipe.write_text(f'validation_last = {held_out}\npromote = "always"\n{extra}' + model(layer))
        store = work / f"store-{name}-{layer}"
        done = subprocess.run(
            [kiln, "train", "--quiet", "--store", str(store), "--data", str(csv), "--recipe", str(recipe)],
            capture_output=True,
            text=True,
        )
        text = done.stdout + done.stderr
        r2 = re.search(r"validation r2 (-?[0-9.]+)", text)
        seconds = re.search(r"in ([0-9.]+) s", text)
        level = re.search(r'chose level = "(\w+)"', text)
        out[layer] = float(r2.group(1)) if r2 else text.strip()[-300:]
        out[f"{layer}_seconds"] = float(seconds.group(1)) if seconds else None
        out["level"] = level.group(1) if level else None
    print(json.dumps(out), flush=True)


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    kiln, args = str(Path(args[0]).resolve()), args[1:]
    extra = ""
    names = []
    while args:
        a = args.pop(0)
        if a == "--extra":
            extra += args.pop(0) + "\n"
        else:
            names.append(a)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in names:
            if ":" in name:
                kind, seed = name.split(":")
                run(kiln, f"{kind}{seed}", generated(kind, int(seed)), extra, work)
            else:
                run(kiln, name, real(name), extra, work)


if __name__ == "__main__":
    main()
