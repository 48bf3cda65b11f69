#!/usr/bin/env bash
# Training throughput of privlin vs its PyTorch twin (same model, batch, threads, optimizer), as a
# ratio: ResNet-18 and the narrow ResNet-18 (base width 16), contiguous and channels-last.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --quiet -p privlin-cli
mkdir -p runs/bench
P=target/release/privlin
$P bench train --models resnet18@0.25,resnet18@1 --batch-size 128 --steps 10 --warmup 3 --rounds 3 --json runs/bench/train.json
$P bench train --models resnet18@0.25,resnet18@1 --batch-size 128 --steps 10 --warmup 3 --rounds 3 --channels-last --json runs/bench/train-cl.json
