#!/usr/bin/env python3
"""Writes ab_order.csv: a sequence task where only the order matters (Python standard
library only, deterministic).

Each row is a sequence of T = 32 events from {A, B, C, D}: one to six A's, one to
six B's, and C / D filler. It is one-hot encoded as 32 x 4 = 128 columns named
t00_A, t00_B, ..., t31_D (row-major, so one instance is a [32, 4] sequence). The
label `target` is 1 when every A comes before every B ("all the As, then the Bs"),
else 0.

Order is the whole task. A negative row is a positive row with one A swapped with
a later B, so positives and negatives hold the same events in the same number and
differ only in their order; no single position and no count tells them apart. A
recurrent net needs one bit of state ("a B has been seen"); attention compares
positions; an MLP must learn every pair of positions (a B at i, an A at j > i)
separately, from 2,400 training rows.

    python3 examples/data/make_ab_order.py > examples/data/ab_order.csv
"""

import random

T = 32
EVENTS = "ABCD"
MOST = 6
ROWS = 3000
SEED = 7


def ordered(rng):
    """A positive sequence: the A's, then the B's, among filler."""
    seq = [rng.choice("CD") for _ in range(T)]
    n_a, n_b = rng.randint(1, MOST), rng.randint(1, MOST)
    slots = sorted(rng.sample(range(T), n_a + n_b))
    for i, at in enumerate(slots):
        seq[at] = "A" if i < n_a else "B"
    return seq


def all_a_before_b(seq):
    last_a = max(i for i, e in enumerate(seq) if e == "A")
    first_b = min(i for i, e in enumerate(seq) if e == "B")
    return last_a < first_b


def main():
    rng = random.Random(SEED)
    print(",".join([f"t{t:02d}_{e}" for t in range(T) for e in EVENTS] + ["target"]))
    for i in range(ROWS):
        seq = ordered(rng)
        if i % 2 == 1:
            # Swap one A with a later B: the same events, out of order.
            a = rng.choice([k for k, e in enumerate(seq) if e == "A"])
            b = rng.choice([k for k, e in enumerate(seq) if e == "B" and k > a])
            seq[a], seq[b] = seq[b], seq[a]
        label = "1" if all_a_before_b(seq) else "0"
        assert (label == "1") == (i % 2 == 0)
        print(",".join(["1" if e == x else "0" for e in seq for x in EVENTS] + [label]))


if __name__ == "__main__":
    main()
