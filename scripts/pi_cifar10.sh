#!/usr/bin/env bash
# The private-inference measurements of docs/results.md ("Private inference"), on this machine:
#   1. `privlin pi bench` on the built-in synthetic residual CNN: per-ReLU offline/online time on
#      one thread and on all threads, and whole-model runs under every network profile, each beside
#      the cost model's prediction;
#   2. the full-width ResNet-18 with every ReLU active (557,056: DELPHI's anchor), end to end,
#      with the weight layers' offline phase under HE (the default) and, for comparison, the
#      insecure dealer (`--per-layer` closes with the split HE / garbled circuits and OT);
#   3. the narrow ResNet-18 of configs/cifar10-narrow-resnet18.toml linearized at 1 / 3 / 10 %
#      (ReLUPruner preset, pipeline stage 6 measures each point);
#   4. those three models served over TCP by one process and queried by another on 200 CIFAR-10
#      test images, the private class checked against the float model's; then the 10 % model with
#      both sides shaped to the WAN profile.
# Reuses every finished step (delete runs/pi or runs/c10-lin/sweep/relupruner to redo them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
data=../shared/data/cifar10
out=runs/pi
mkdir -p "$out"

echo "== 1. pi bench, synthetic model"
"$bin" pi bench --json "$out/bench-synthetic.json" | tee "$out/bench-synthetic.txt"

echo "== 2. full-width ResNet-18, all ReLUs active"
bash scripts/r18_full_export.sh
"$bin" cost --model "$out/r18-full/export" --plot "$out/cost-r18-full.svg" | tee "$out/cost-r18-full.txt"
"$bin" pi bench --model "$out/r18-full/export" --profiles none --per-layer \
    --json "$out/bench-r18-full.json" | tee "$out/bench-r18-full.txt"
"$bin" pi bench --model "$out/r18-full/export" --profiles none --per-layer --offline dealer \
    --json "$out/bench-r18-full-dealer.json" | tee "$out/bench-r18-full-dealer.txt"

echo "== 3. narrow ResNet-18 on CIFAR-10, linearized at 1 / 3 / 10 % (ReLUPruner)"
if [ ! -e runs/c10-lin/ar ] && [ -d runs/cifar10-narrow-r18/ar ]; then
    mkdir -p runs/c10-lin && ln -s ../cifar10-narrow-r18/ar runs/c10-lin/ar
fi
"$bin" sweep configs/cifar10-linearize.toml --budgets 1%,3%,10% --presets relupruner

echo "== 4. two processes over TCP, 200 test images each"
port=7711
for b in 1pct 3pct 10pct; do
    point=runs/c10-lin/sweep/relupruner/$b
    "$bin" cost --model "$point/pi" --plot "$out/cost-c10-$b.svg" | tee "$out/cost-c10-$b.txt"
    "$bin" pi serve --model "$point/pi" --listen 127.0.0.1:$port --sessions 1 &
    server=$!
    sleep 2
    "$bin" pi client --connect 127.0.0.1:$port --data "$data" --images 200 --check "$point/final" \
        --json "$out/tcp-$b.json" > "$out/tcp-$b.txt"
    wait $server
    tail -n 12 "$out/tcp-$b.txt"
    port=$((port + 1))
done
point=runs/c10-lin/sweep/relupruner/10pct
"$bin" pi serve --model "$point/pi" --listen 127.0.0.1:$port --profile wan --sessions 1 &
server=$!
sleep 2
"$bin" pi client --connect 127.0.0.1:$port --data "$data" --images 10 --check "$point/final" \
    --profile wan --json "$out/tcp-wan-10pct.json" > "$out/tcp-wan-10pct.txt"
wait $server
tail -n 12 "$out/tcp-wan-10pct.txt"
