#!/usr/bin/env bash
# The measurements of docs/results.md, "Weight layers under homomorphic encryption":
#   1. the full-width ResNet-18 with every ReLU active, one inference, HE then the dealer
#      (`pi bench --per-layer`: every layer measured and predicted, the offline phase split into
#      HE and garbled circuits + OT);
#   2. the demo's narrow ResNet-18 linearized at 1 / 3 / 10 % (`privlin sweep configs/demo.toml`,
#      stage 6 runs 16 images under HE per point), then each point served over loopback TCP by
#      one process and queried by another on 20 CIFAR-10 test images, the private class checked
#      against the float model's.
# Reuses finished steps (delete runs/pi/r18-full or runs/he-demo to redo them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/r18_full_export.sh
bin=./target/release/privlin
data=../shared/data/cifar10
out=runs/pi

echo "== 1. full-width ResNet-18, all ReLUs active: HE, then the dealer"
for mode in he dealer; do
    "$bin" pi bench --model "$out/r18-full/export" --profiles none --per-layer --relus 2000 \
        --offline $mode --json "$out/bench-r18-full-$mode.json" | tee "$out/bench-r18-full-$mode.txt"
done

echo "== 2. narrow ResNet-18 at 1 / 3 / 10 %, stage 6 and two processes over TCP"
"$bin" sweep configs/demo.toml --budgets 1%,3%,10% --set out=runs/he-demo
port=7721
for b in 1pct 3pct 10pct; do
    point=runs/he-demo/sweep/privshap/$b
    "$bin" cost --model "$point/pi" | tee "$out/cost-he-demo-$b.txt"
    "$bin" pi serve --model "$point/pi" --listen 127.0.0.1:$port --sessions 1 &
    server=$!
    sleep 2
    "$bin" pi client --connect 127.0.0.1:$port --data "$data" --images 20 --check "$point/final" \
        --json "$out/tcp-he-$b.json" > "$out/tcp-he-$b.txt"
    wait $server
    tail -n 6 "$out/tcp-he-$b.txt"
    port=$((port + 1))
done
