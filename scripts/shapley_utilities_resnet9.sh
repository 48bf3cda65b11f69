#!/usr/bin/env bash
# How the utility of the Shapley game changes the ranking of sites and the budgets that follow:
# the exact 8-player game of the ResNet-9 of scripts/shapley_resnet9.sh (trained there, or here if
# missing) under accuracy, -cross-entropy and -KL to the all-ReLU model, and accuracy with an
# adaptive image count; a 5 % budget allocated from each. Prints a Markdown table.
#   bash scripts/shapley_utilities_resnet9.sh     (about 15 minutes on a 2-core CPU with training)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
P=target/release/privlin
OUT=${OUT:-runs/resnet9-c10}
DATA=${DATA:-../shared/data/cifar10}
mkdir -p "$OUT"
P=$P OUT=$OUT DATA=$DATA bash scripts/train_resnet9_c10.sh
common=(--ckpt "$OUT/ar" --utility-size 2000 --device cpu --method shapley-exact)
for u in accuracy ce kl; do
  [ -f "$OUT/exact-$u.json" ] || $P importance "${common[@]}" --utility "$u" --out "$OUT/exact-$u.json" --plot "$OUT/exact-$u.svg"
  $P allocate --importance "$OUT/exact-$u.json" --budget 5% --out "$OUT/budget-$u.json" > /dev/null
done
[ -f "$OUT/exact-accuracy-adaptive.json" ] || $P importance "${common[@]}" --utility accuracy \
  --utility-stderr 1.5 --out "$OUT/exact-accuracy-adaptive.json"
$P allocate --importance "$OUT/exact-accuracy-adaptive.json" --budget 5% --out "$OUT/budget-accuracy-adaptive.json" > /dev/null
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    for k, i in enumerate(order):
        r[i] = k + 1.0
    return r
def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
    return num / den if den else float("nan")
ref = json.load(open(f"{out}/exact-accuracy.json"))
refb = json.load(open(f"{out}/budget-accuracy.json"))
print("| utility | U(N) / U(empty) | values | Spearman vs accuracy | budgets (5 %) | sites whose budget moved > 10 % | images evaluated |")
print("|---|---|---|---|---|---|---|")
for tag in ["accuracy", "ce", "kl", "accuracy-adaptive"]:
    d = json.load(open(f"{out}/exact-{tag}.json"))
    b = json.load(open(f"{out}/budget-{tag}.json"))
    bud = [s["budget"] for s in b["sites"]]
    moved = sum(1 for x, y in zip(bud, [s["budget"] for s in refb["sites"]]) if abs(x - y) > 0.1 * max(y, 1))
    imgs = d["params"].get("images_run", [0, 0])
    vals = " ".join(f"{v:.3g}" for v in d["values"])
    print(f"| {tag} | {d['utility_full']:.3g} / {d['utility_empty']:.3g} | {vals} | "
          f"{pearson(ranks(d['values']), ranks(ref['values'])):.3f} | {' '.join(map(str, bud))} | {moved} of {len(bud)} | "
          f"{imgs[0]} of {imgs[1]} |")
print("players:", ", ".join(ref["players"]))
PY
