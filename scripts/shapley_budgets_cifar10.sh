#!/usr/bin/env bash
# Per-site Shapley budgets against uniform per-site budgets (docs/results.md, "Per-site Shapley
# budgets against uniform per-site budgets"): the narrow ResNet-18 of configs/cifar10-design.toml
# (reused from runs/c10-design when it is there), presets `privshap` (the per-site game, its
# default estimator) and `uniform`, at 1 % and 3 % of the counted ReLUs, mask learning and
# fine-tuning seeds 0, 1, 2 (the all-ReLU model and the game are the same for every seed).
#   bash scripts/shapley_budgets_cifar10.sh    (about 45 minutes on 2 cores; BUDGETS=1% and
#   PRESETS=uniform choose a part)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh > /dev/null
cargo build --release --quiet -p privlin-cli
P=./target/release/privlin
out=runs/c10-shapley
if [ ! -e "$out/models/resnet18_w0.25/ar" ] && [ -d runs/c10-design/models/resnet18_w0.25/ar ]; then
    mkdir -p "$out/models/resnet18_w0.25"
    ln -s ../../../c10-design/models/resnet18_w0.25/ar "$out/models/resnet18_w0.25/ar"
fi
for preset in ${PRESETS:-privshap uniform}; do
    for seed in 0 1 2; do
        "$P" sweep configs/cifar10-design.toml --set "out=\"$out\"" --set pi.images=0 \
            --set importance.utility_size=300 \
            --set linearize.train.seed=$seed --set finetune.train.seed=$seed \
            --models resnet18@0.25 --presets "$preset" --tag "$preset-s$seed" --budgets ${BUDGETS:-1%,3%}
    done
done
"$P" sweep configs/cifar10-design.toml --set "out=\"$out\"" --models resnet18@0.25 \
    --budgets 1%,3% --collect-only
