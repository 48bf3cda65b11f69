#!/usr/bin/env bash
# Every zoo architecture under the two-party protocol (issue 13): small ResNet-9 / VGG-11 /
# WRN-16-2 trained 6 epochs on 3,000 CIFAR-10 images, 20 test images each classified privately
# (HE offline phase, garbled max-pool and ReLU circuits; `pi measure`), and the predicted cost of
# the full-width ResNet-9, VGG-16 and WRN-22-8 (one short epoch gives checkpoints with real
# statistics; the cost does not depend on the weights). Outputs under runs/zoo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
export LD_LIBRARY_PATH="$(ls -d "$PWD"/.venv/lib/python3*/site-packages/torch/lib)"
data=../shared/data/cifar10
for spec in "resnet9 0.25" "vgg11 0.25" "wrn-16-2 1"; do
    set -- $spec
    out=runs/zoo/$(echo "$1" | tr -d -)
    [ -f "$out/model.safetensors" ] || "$bin" train --arch "$1" --width "$2" --data "$data" \
        --train-per-class 300 --test-per-class 30 --epochs 6 --batch-size 64 --out "$out" --device cpu
    "$bin" pi measure --ckpt "$out" --out "$out/pi" --images 20 | tee "$out/pi.txt"
done
for arch in resnet9 vgg16 wrn-22-8; do
    out=runs/zoo/full-$(echo "$arch" | tr -d -)
    [ -f "$out/model.safetensors" ] || "$bin" train --arch "$arch" --width 1 --epochs 1 \
        --data "$data" --train-per-class 2 --test-per-class 1 --batch-size 20 --out "$out" --device cpu
    "$bin" cost --model "$out" | tee "$out/cost.txt"
done
