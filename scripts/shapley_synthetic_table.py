#!/usr/bin/env python3
"""A synthetic accuracy-like game over n players, written as a utility table for
`privlin shapley-score` and `privlin importance --utility-table` (standard library only).

U(S) = chance + (top - chance) * sigmoid(sum_{i in S} w_i + sum_{i<j in S} b_ij - theta) + noise(S):
per-player weights decay with depth like the per-site games of a ResNet (early sites matter more),
a few pairwise interactions, and a deterministic per-coalition noise of +-noise accuracy points
(the sampling noise of a finite utility set). It stands in for a model game when none is at hand;
it is not a measurement of any network.

    python3 scripts/shapley_synthetic_table.py --players 17 --out runs/shapley/synthetic17.json
"""
import argparse
import json
import math
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=17)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chance", type=float, default=10.0)
    ap.add_argument("--top", type=float, default=90.0)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    n = a.players
    rng = random.Random(a.seed)
    w = [1.6 * math.exp(-i / 6.0) * rng.uniform(0.6, 1.4) for i in range(n)]
    pairs = {(i, i + 1): rng.uniform(-0.4, 0.8) for i in range(0, n - 1, 3)}
    theta = 0.45 * sum(w)
    utilities = {}
    for c in range(1 << n):
        s = sum(w[i] for i in range(n) if c >> i & 1)
        s += sum(b for (i, j), b in pairs.items() if c >> i & 1 and c >> j & 1)
        u = a.chance + (a.top - a.chance) / (1.0 + math.exp(-(s - theta) * 3.0 / max(theta, 1e-9)))
        u += a.noise * (2.0 * random.Random(c * 7919 + a.seed).random() - 1.0)
        key = "".join("1" if c >> i & 1 else "0" for i in range(n))
        utilities[key] = round(u, 4)
    table = {"players": [f"site{i}" for i in range(n)], "utilities": utilities}
    with open(a.out + ".tmp", "w") as f:
        json.dump(table, f)
    import os
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
