#!/usr/bin/env bash
# The reference game of the per-site Shapley study (docs/results.md, "Per-site Shapley values
# of the narrow ResNet-18: the exact 17-player game"): the exact game of the narrow ResNet-18 (width 0.25, every
# ReLU site a player: 17) of configs/cifar10-design.toml, trained on 9,000 CIFAR-10 images with
# 900 held out, played on 300 of the held-out images; stored as a utility table with its
# wall-clock, then every sampling estimator scored on it at 0.5-5 % of the 131,072 coalitions.
# Reuses runs/c10-design/models/resnet18_w0.25/ar (scripts/design_cifar10.sh) when it is there,
# otherwise trains it (12 epochs, about 15 minutes on 2 cores).
#   bash scripts/shapley_reference.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh > /dev/null
cargo build --release --quiet -p privlin-cli
bin=./target/release/privlin
ar=runs/c10-design/models/resnet18_w0.25/ar
[ -f "$ar/model.safetensors" ] || "$bin" train --config configs/cifar10-design.toml --out "$ar"
mkdir -p runs/shapley
table=runs/shapley/reference17.json
if [ ! -f "$table" ]; then
    # --utility-cache saves every utility computed: the table of the whole game.
    /usr/bin/time -v -o runs/shapley/reference17.time \
        "$bin" importance --ckpt "$ar" --method shapley-exact --players sites --max-exact 17 \
        --max-evaluations 131072 --utility-split holdout --utility-size 300 \
        --utility-cache "$table.partial" --out runs/shapley/exact17.json \
        --plot runs/shapley/exact17.svg --device cpu
    mv "$table.partial" "$table"
fi
"$bin" shapley-score --utility-table "$table" --caps 0.5%,1%,2%,5% --seeds 5 \
    --json runs/shapley/reference17-score.json --plot runs/shapley/reference17-score.svg \
    | tee runs/shapley/reference17-score.txt
