#!/usr/bin/env python3
"""A CNN on the bundled 8x8 digits, scored on rows it never saw (issue 21).

For seeds 1-5 (`KILN_EVAL_SEEDS`=N for 1-N; `KILN_EVAL_SEED_START`=S for S..S+N-1): the rows of examples/data/digits.csv shuffled and split 80/20;
`kiln train` on the 80% (its own validation split inside them), then
`kiln predict` on the 20% and the accuracy of its labels. Prints one line per
recipe: the five accuracies, their mean, the total training time and the epochs
run.

Usage: cnn_holdout.py KILN_BINARY [MODEL] [NAME='toml line|toml line' ...]
  MODEL is a model config name in config/models or benches/evals/models
  (default digits-cnn; digits-cnn2 has two conv layers); without
  NAME=... it compares the defaults with the hand recipe's settings
  (config/digits-cnn-train.toml: Adam 2e-3, 40 epochs, patience 8).
  e.g. cnn_holdout.py target/release/kiln digits-cnn \\
         'onecycle=optimizer = { kind = "adamw", lr = 0.003, weight_decay = 0.05 }|lr_schedule = { kind = "one_cycle" }|epochs = 40'
Standard-library Python only.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# config/models plus this directory's models/ (digits-cnn2: two conv layers).
MODELS = Path(tempfile.mkdtemp(prefix="kiln-models-"))
for source in [REPO / "config/models", Path(__file__).resolve().parent / "models"]:
    for f in source.glob("*.toml"):
        (MODELS / f.name).write_text(f.read_text())
SEEDS = int(os.environ.get("KILN_EVAL_SEEDS", "5"))
SEED_START = int(os.environ.get("KILN_EVAL_SEED_START", "1"))


def run(kiln, work, seed, lines, tag, rows):
    head, body = rows[0], rows[1:]
    order = list(range(len(body)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * 0.8)
    train = work / f"train{seed}.csv"
    test = work / f"test{seed}.csv"
    train.write_text(head + "\n" + "\n".join(body[i] for i in order[:cut]) + "\n")
    held = [body[i] for i in order[cut:]]
    test.write_text(head + "\n" + "\n".join(held) + "\n")
    recipe = work / "recipe.toml"
    recipe.write_text("\n".join(lines) + '\npromote = "always"\n')
    store = work / f"store-{tag}-{seed}"
    env = dict(os.environ, KILN_TRAINING__CONFIG_DIR=str(MODELS))
    started = time.time()
    done = subprocess.run(
        [kiln, "train", "--quiet", "--store", str(store), "--data", str(train), "--recipe", str(recipe)],
        capture_output=True, text=True, env=env,
    )
    seconds = time.time() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    answers = subprocess.run(
        [kiln, "predict", "--store", str(store), "--data", str(test)], capture_output=True, text=True, env=env
    ).stdout.split("\n")
    labels = [json.loads(a)["label"] for a in answers if a]
    truth = [row.rsplit(",", 1)[1] for row in held]
    epochs = re.search(r"(\d+) epochs of", done.stdout)
    return sum(a == b for a, b in zip(labels, truth)) / len(truth), seconds, epochs.group(1) if epochs else "?"


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    kiln = str(Path(sys.argv[1]).resolve())
    args = sys.argv[2:]
    model = args.pop(0) if args and "=" not in args[0] else "digits-cnn"
    base = [f'model = "{model}"']
    recipes = {}
    for a in args:
        name, lines = a.split("=", 1)
        recipes[name] = base + lines.split("|")
    if not recipes:
        recipes = {
            "defaults": base,
            "hand": base + ['optimizer = { kind = "adam", lr = 0.002 }', "epochs = 40", "early_stopping_patience = 8"],
        }
    rows = (REPO / "examples/data/digits.csv").read_text().strip().split("\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, lines in recipes.items():
            results = [run(kiln, work, seed, lines, name, rows) for seed in range(SEED_START, SEED_START + SEEDS)]
            accs = [a for a, _, _ in results]
            print(
                f"{name}: " + " ".join(f"{a:.3f}" for a in accs)
                + f"; mean {sum(accs) / len(accs):.4f}; {sum(s for _, s, _ in results):.1f} s; epochs {[e for *_, e in results]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
