#!/usr/bin/env bash
# Shapley estimators on a ResNet-9 (8 ReLU layers, width x0.25) trained on ../shared/data/cifar10:
# exact vs tree-trimming (several thresholds) vs Monte-Carlo vs bandit: Pearson correlation with
# exact, utility evaluations, wall-clock. Every estimator computes its own utilities (no shared
# cache), so the wall-clocks compare. Writes runs/resnet9-c10/ and prints a Markdown table.
#   bash scripts/shapley_resnet9.sh            (about 20 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
P=target/release/privlin
OUT=${OUT:-runs/resnet9-c10}
DATA=${DATA:-../shared/data/cifar10}
mkdir -p "$OUT"
P=$P OUT=$OUT DATA=$DATA bash scripts/train_resnet9_c10.sh
# PrivShap's thresholds (5/10/15 %) and, because the all-identity ResNet-9 keeps its max-pools and
# scores about 31 % on CIFAR-10 (so nothing falls below 5-15 %), thresholds above that floor.
THRESHOLDS=${THRESHOLDS:-5 10 15 35 45 55}
common=(--ckpt "$OUT/ar" --utility-size 2000 --device cpu)
run() { # run OUTPUT ARGS...: skipped when OUTPUT exists (the script resumes)
  local out=$1; shift
  [ -f "$OUT/$out.json" ] || $P importance "${common[@]}" "$@" --out "$OUT/$out.json" --plot "$OUT/$out.svg"
}
run exact --method shapley-exact
for t in $THRESHOLDS; do run "tree-$t" --method shapley-tree --threshold "$t"; done
run mc --method shapley-mc
run bandit --method shapley-bandit
$P allocate --importance "$OUT/tree-35.json" --budget 5% --out "$OUT/budget-tree-35.json" --plot "$OUT/budget-tree-35.svg"
python3 - "$OUT" <<'PY'
import json, math, sys, glob, os
out = sys.argv[1]
ex = json.load(open(f"{out}/exact.json"))
def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den else float("nan")
print(f"utility set: {ex['utility_set']}; U(N) = {ex['utility_full']:.2f}%, U(empty) = {ex['utility_empty']:.2f}%")
print("| estimator | Pearson vs exact | utility evaluations | share of exact | wall-clock (s) | values |")
print("|---|---|---|---|---|---|")
thresholds = os.environ.get("THRESHOLDS", "5 10 15 35 45 55").split()
files = ["exact.json"] + [f"tree-{t}.json" for t in thresholds] + ["mc.json", "bandit.json"]
for f in files:
    d = json.load(open(os.path.join(out, f)))
    label = d["method"] + (f" (alpha {d['params']['threshold']:g}%)" if d["method"] == "shapley-tree" else "")
    vals = " ".join(f"{v:.2f}" for v in d["values"])
    print(f"| {label} | {pearson(d['values'], ex['values']):.4f} | {d['evaluations']} | {d['evaluations'] / ex['evaluations']:.2f} | {d['seconds']:.1f} | {vals} |")
PY
