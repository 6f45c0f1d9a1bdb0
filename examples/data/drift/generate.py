"""Generates the drift example: a two-feature classifier whose world moves.

train.csv  (1000 rows): x1, x2 ~ N(0, 1); target "yes" when x1 + x2 > 0.
stream.csv (4500 rows): 1500 rows like train.csv, then 3000 rows after the
shift: x1 ~ N(1.5, 1), x2 ~ N(0, 1); target "yes" when x1 - x2 > 1.5. The
labels are the same two; the inputs move and the labelling rule changes.

Deterministic: python3 generate.py writes the same files every time.
"""

import csv
import random

rng = random.Random(20261129)


def row(shifted):
    if shifted:
        x1, x2 = rng.gauss(1.5, 1.0), rng.gauss(0.0, 1.0)
        yes = x1 - x2 > 1.5
    else:
        x1, x2 = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        yes = x1 + x2 > 0
    return [f"{x1:.4f}", f"{x2:.4f}", "yes" if yes else "no"]


def write(name, rows):
    with open(name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["x1", "x2", "target"])
        w.writerows(rows)


write("train.csv", [row(False) for _ in range(1000)])
write("stream.csv", [row(False) for _ in range(1500)] + [row(True) for _ in range(3000)])
