#!/usr/bin/env bash
# Network design on CIFAR-10 (issue 18; docs/results.md "Network design"): the narrow ResNet-18's
# stage criticality by DeepReDuce's measurement and by a stage-level Shapley game, the HybReNets
# that ReLU equalization proposes from it (stages ranked per ReLU, the default, and by total
# value), then ResNet-18 at two widths and those HybReNets, each linearized by the same
# fine-grained learner (relupruner) at matching ReLU counts, and DeepReDuce (cull + thin + KD) on
# the ResNet-18, with private-inference cost per point. One seed.
#   bash scripts/design_cifar10.sh      (about 2 hours on a 2-core CPU)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
P=target/release/privlin
CFG=configs/cifar10-design.toml
OUT=runs/c10-design
W=0.0625   # m = 4 for the HybReNets
R18=resnet18@0.25
# 1. The narrow ResNet-18 and its relupruner points (trains the all-ReLU model once).
$P sweep $CFG --models $R18 --presets relupruner --budgets 5k,15k,30k
AR=$OUT/models/resnet18_w0.25/ar
# 2. Stage criticality, both ways, ranked per ReLU (and by total value, for comparison).
[ -f "$OUT/importance-stages.json" ] || $P importance --ckpt "$AR" --method shapley-exact --players stages \
    --utility-size 1000 --out "$OUT/importance-stages.json"
for rank in per-relu total; do
    $P design criticality --ckpt "$AR" --method shapley --importance "$OUT/importance-stages.json" \
        --rank-by $rank --out "$OUT/criticality-shapley-$rank.json"
    [ -f "$OUT/criticality-deepreduce-$rank.json" ] || $P design criticality --ckpt "$AR" --method deepreduce \
        --epochs 1 --train-per-class 200 --rank-by $rank --out "$OUT/criticality-deepreduce-$rank.json"
    # 3. ReLU equalization from the Shapley order (gamma <= 2).
    $P design equalize --criticality "$OUT/criticality-shapley-$rank.json" --width $W \
        --out "$OUT/hrn-$rank.toml" | tee "$OUT/equalize-$rank.txt"
done
hrn() { sed -n 's/^arch = "\(.*\)"/\1/p' "$OUT/hrn-$1.toml"; }
# 4. The same learner on ResNet-18 at half the width and on the HybReNets; DeepReDuce on ResNet-18.
# (The m = 4 HybReNets train channels-first: libtorch's channels-last convolution stalls below 8
# channels, and training refuses it.)
$P sweep $CFG --models resnet18@0.125,$R18 --presets relupruner --budgets 5k,15k,30k
$P sweep $CFG --set train.channels_last=false --models $(hrn total)@$W --presets relupruner --budgets 5k,15k
$P sweep $CFG --set train.channels_last=false --models $(hrn per-relu)@$W --presets relupruner --budgets 5k,15k
ORDER=$(python3 -c "import json; print(json.dumps(json.load(open('$OUT/criticality-shapley-per-relu.json'))['order']))")
$P sweep $CFG --set "linearize.deepreduce.order=$ORDER" --models $R18 --presets deepreduce --budgets 5k,15k
