#!/usr/bin/env bash
# How many epochs SNL, as its authors run it, needs to reach a budget, and what privlin's
# fixed-epoch l1 variant gives with the same epochs (docs/results.md, "SNL as its authors run it").
# The ResNet-9 of scripts/train_resnet9_c10.sh on ../shared/data/cifar10, 1,000 training images per
# class per epoch, budget 10 %, lambda 1e-5, Adam 1e-3, epoch cap 60; no fine-tuning. One seed.
#   bash scripts/snl_resnet9.sh     (about 40 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
P=target/release/privlin
R9=${R9:-runs/resnet9-c10}
OUT=${OUT:-runs/snl-r9}
BUDGET=${BUDGET:-10%}
P=$P OUT=$R9 DATA=${DATA:-../shared/data/cifar10} bash scripts/train_resnet9_c10.sh
mkdir -p "$OUT"
common=(--ckpt "$R9/ar" --total "$BUDGET" --train-per-class 1000 --device cpu)
[ -f "$OUT/snl/linearize.json" ] || $P linearize "${common[@]}" --method snl --epochs 60 --out "$OUT/snl" 2>&1 | tee "$OUT/snl.log"
epochs=$(python3 -c "import json; print(json.load(open('$OUT/snl/linearize.json'))['epochs'])")
[ -f "$OUT/l1/linearize.json" ] || $P linearize "${common[@]}" --method l1-fixed-epochs --epochs "$epochs" --out "$OUT/l1" 2>&1 | tee "$OUT/l1.log"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ["snl", "l1"]:
    r = json.load(open(f"{out}/{name}/linearize.json"))
    print(f"| {r['method']} | {r['epochs']} | {r['relus']} of {r['capacity']} (budget {r['budget']}) | "
          f"{r.get('budget_outcome')} | {100 * r['test_acc_ar']:.2f} % | {100 * r['test_acc']:.2f} % | {r['seconds']:.0f} s |")
    for n in r["notes"]:
        print("  note:", n)
PY
