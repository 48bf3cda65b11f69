#!/usr/bin/env bash
# Network design on CIFAR-10 (issue 18; docs/results.md "Network design"): the narrow ResNet-18's
# stage criticality by DeepReDuce's measurement and by a stage-level Shapley game, the HybReNet
# that ReLU equalization proposes from it, then ResNet-18 at two widths and that HybReNet, each
# linearized by the same fine-grained learner (relupruner) at matching ReLU counts, and DeepReDuce
# (cull + thin + KD) on the ResNet-18, with private-inference cost per point.
#   bash scripts/design_cifar10.sh      (about 1 hour on a 2-core CPU)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
P=target/release/privlin
CFG=configs/cifar10-design.toml
OUT=${OUT:-runs/c10-design}
BUDGETS=${BUDGETS:-5k,15k,30k}
HRN_WIDTH=${HRN_WIDTH:-0.0625}
R18=resnet18@0.25
# 1. The narrow ResNet-18 and its relupruner points (trains the all-ReLU model once).
$P sweep $CFG --set out=\"$OUT\" --models $R18 --presets relupruner --budgets $BUDGETS
AR=$OUT/models/resnet18_w0.25/ar
# 2. Stage criticality, both ways.
[ -f "$OUT/criticality-deepreduce.json" ] || $P design criticality --ckpt "$AR" --method deepreduce \
    --epochs 1 --train-per-class 200 --out "$OUT/criticality-deepreduce.json"
[ -f "$OUT/importance-stages.json" ] || $P importance --ckpt "$AR" --method shapley-exact --players stages \
    --utility-size 1000 --out "$OUT/importance-stages.json"
$P design criticality --ckpt "$AR" --method shapley --importance "$OUT/importance-stages.json" \
    --out "$OUT/criticality-shapley.json"
# 3. ReLU equalization from the Shapley order (gamma <= 2), m = 64 x HRN_WIDTH.
$P design equalize --criticality "$OUT/criticality-shapley.json" --width "$HRN_WIDTH" \
    --out "$OUT/hrn.toml" | tee "$OUT/equalize.txt"
HRN=$(sed -n 's/^arch = "\(.*\)"/\1/p' "$OUT/hrn.toml")
# 4. The same learner on ResNet-18 at half the width and on the HybReNet; DeepReDuce on ResNet-18.
$P sweep $CFG --set out=\"$OUT\" --models resnet18@0.125,$R18,$HRN@$HRN_WIDTH --presets relupruner --budgets $BUDGETS
ORDER=$(python3 -c "import json; print(json.dumps(json.load(open('$OUT/criticality-shapley.json'))['order']))")
$P sweep $CFG --set out=\"$OUT\" --set "linearize.deepreduce.order=$ORDER" --models $R18 \
    --presets deepreduce --budgets $BUDGETS
