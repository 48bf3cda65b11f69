#!/usr/bin/env bash
# The reference game of the per-site Shapley study (docs/results.md, "Shapley estimators scored
# against exact values"): the exact 17-player game of the narrow ResNet-18 of
# configs/cifar10-narrow-resnet18.toml on 300 training images (the model saw them in training: this
# game benchmarks the estimators, it sets no budget), stored as a utility
# table, then every sampling estimator scored on it at 0.5-5 % of the 131,072 coalitions.
# Reuses runs/cifar10-narrow-r18/ar when it is there (otherwise trains it: about 35 minutes on
# 2 cores). The exact game is the long part: about 131,072 utilities of 300 images with prefix
# sharing (estimated 1-2 hours on this 2-core CPU from the 0.4 s per 2,000-image utility measured
# for tree-trimming); its wall-clock is written to runs/shapley/reference17.time.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
ar=runs/cifar10-narrow-r18/ar
[ -f "$ar/model.safetensors" ] || "$bin" train --config configs/cifar10-narrow-resnet18.toml
mkdir -p runs/shapley
table=runs/shapley/reference17.json
if [ ! -f "$table" ]; then
    # --utility-cache saves every utility computed: the table of the whole game.
    /usr/bin/time -v -o runs/shapley/reference17.time \
        "$bin" importance --ckpt "$ar" --method shapley-exact --players sites --max-exact 17 \
        --max-evaluations 131072 --utility-split train --utility-size 300 \
        --utility-cache "$table.partial" --out runs/shapley/exact17.json --device cpu
    mv "$table.partial" "$table"
fi
"$bin" shapley-score --utility-table "$table" --caps 0.5%,1%,2%,5% --seeds 5 \
    --json runs/shapley/reference17-score.json --plot runs/shapley/reference17-score.svg
