#!/usr/bin/env bash
# The full-width ResNet-18 export that the private-inference measurements use (every ReLU active;
# one short epoch makes a checkpoint with real statistics, and the cost does not depend on the
# weights): runs/pi/r18-full/{ar,export}. Does nothing when both exist.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
out=runs/pi/r18-full
if [ ! -f "$out/ar/model.safetensors" ]; then
    "$bin" train --arch resnet18 --width 1 --epochs 1 --data ../shared/data/cifar10 \
        --train-per-class 20 --test-per-class 2 --batch-size 50 --out "$out/ar" --device cpu
fi
[ -f "$out/export/model.json" ] || "$bin" pi export --ckpt "$out/ar" --out "$out/export"
