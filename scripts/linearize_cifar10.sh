#!/usr/bin/env bash
# The linearization comparison of docs/results.md on ../shared/data/cifar10 (narrow ResNet-18):
# five methods at three budgets, then the ablations at the lowest budget(s). Reuses a finished
# all-ReLU model in runs/c10-lin/ar (e.g. a link to runs/cifar10-narrow-r18/ar from
# `./privlin train --config configs/cifar10-narrow-resnet18.toml`) and every finished point.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=configs/cifar10-linearize.toml
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
# Reuse the all-ReLU model of configs/cifar10-narrow-resnet18.toml if it is there; otherwise the
# sweep trains it (same recipe, about 35 minutes on 2 cores).
if [ ! -e runs/c10-lin/ar ] && [ -d runs/cifar10-narrow-r18/ar ]; then
    mkdir -p runs/c10-lin && ln -s ../cifar10-narrow-r18/ar runs/c10-lin/ar
fi
"$bin" sweep "$cfg" --budgets 1%,3%,10% --presets uniform,privshap,senet,relupruner,l1-fixed-epochs
# SNL as its authors run it stops when its count reaches the budget: give it up to 200 epochs (the
# authors allow 2,000); sweep.csv records the epochs it took and whether the budget was reached.
"$bin" sweep "$cfg" --budgets 1%,3%,10% --presets snl --set linearize.train.epochs=200
# Ablations: ReLUPruner first- vs second-order, with vs without layer importance (Table 4),
# measured with unnormalized unit scores (the default before the normalization comparison below);
# gradient projection with the paper's instantaneous ranking vs the accumulated default.
"$bin" sweep "$cfg" --budgets 1% --presets relupruner --tag relupruner-first-order \
    --set linearize.taylor.second_order=false --set 'linearize.taylor.normalize="none"'
"$bin" sweep "$cfg" --budgets 1% --presets relupruner --tag relupruner-no-layer-importance \
    --set linearize.taylor.layer_importance=false --set 'linearize.taylor.normalize="none"'
"$bin" sweep "$cfg" --budgets 1%,3% --presets privshap --tag privshap-instantaneous \
    --set 'linearize.gradproj.ranking="instantaneous"'
# ReLUPruner's global ranking of the plain product of eqs. 8 and 9 (unnormalized unit scores).
"$bin" sweep "$cfg" --budgets 1%,3%,10% --presets relupruner --tag relupruner-unnormalized \
    --set 'linearize.taylor.normalize="none"'
"$bin" sweep "$cfg" --budgets 1% --collect-only
