#!/usr/bin/env bash
# "Making Models Shallow Again" on CIFAR-10 (issue 12; docs/results.md "Shallow partial-ReLU
# models"): from one partial-ReLU checkpoint of the narrow ResNet-18 (relupruner masks at 15k
# ReLUs, from the network-design run), the same 20 epochs of fine-tuning without gated branching,
# with GB, and with GB + auxiliary classifier; then each model under the two-party protocol.
# Also the shallow branch's initialization and kernel at zero fine-tuning epochs. One seed.
#   bash scripts/shallow_cifar10.sh      (about 2 hours on a 2-core CPU)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
P=target/release/privlin
CFG=configs/cifar10-shallow.toml
OUT=runs/c10-shallow
PR=runs/c10-design/sweep/resnet18_w0.25_relupruner/15k/pr
# The partial-ReLU checkpoint (skipped when the design run made it already).
[ -f "$PR/linearize.json" ] || $P sweep configs/cifar10-design.toml --models resnet18@0.25 \
    --presets relupruner --budgets 15k
mkdir -p $OUT
# Shallow-branch initialization and kernel: R^2 and accuracy with every gate at 1 before any
# fine-tuning (one epoch at gate 1 to finish the stage; only its init numbers are read).
for k in 1 3 5; do
    [ -f "$OUT/init-k$k/reshape.json" ] || $P reshape --ckpt $PR --out $OUT/init-k$k --config $CFG \
        --kernel $k --epochs 1 --ramp-epochs 0 --aux none
done
# Same epochs: without GB, with GB, with GB + AC (trained with AKD; the report has both outputs).
[ -f "$OUT/no-gb/finetune.json" ] || $P finetune --ckpt $PR --out $OUT/no-gb --config $CFG
[ -f "$OUT/gb/reshape.json" ] || $P reshape --ckpt $PR --out $OUT/gb --config $CFG --aux none
[ -f "$OUT/gb-ac/reshape.json" ] || $P reshape --ckpt $PR --out $OUT/gb-ac --config $CFG --aux serve
# Private inference of each served model (HE offline phase, 8 test images).
for m in no-gb gb gb-ac; do
    [ -f "$OUT/pi-$m/pi.json" ] || $P pi measure --ckpt $OUT/$m --out $OUT/pi-$m --images 8
done
for m in gb gb-ac; do cat $OUT/$m/reshape.md; echo; done
