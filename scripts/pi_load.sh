#!/usr/bin/env bash
# The service under load (issue 14): the demo's narrow ResNet-18 all-ReLU and its 10 % and 1 %
# linearizations (from `bash scripts/he_offline.sh`, runs/he-demo), two client sessions with a
# pool of two precomputed offline phases each, Poisson arrivals at 0.1-0.8 per second, 60 s per rate,
# HE offline phase. Writes runs/load/{load.json,latency.svg,load.txt}. Both parties and every
# client share this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
export LD_LIBRARY_PATH="$(ls -d "$PWD"/.venv/lib/python3*/site-packages/torch/lib)"
demo=runs/he-demo
[ -d "$demo/sweep/privshap/1pct/pi" ] || bash scripts/he_offline.sh
mkdir -p runs/load
"$bin" pi load --model "$demo/ar" --model "$demo/sweep/privshap/10pct/pi" \
    --model "$demo/sweep/privshap/1pct/pi" --label all-ReLU --label "10 %" --label "1 %" \
    --rates "${RATES:-0.1,0.2,0.4,0.8}" --duration "${DURATION:-60}" --clients 2 --pool 2 \
    --json runs/load/load.json --plot runs/load/latency.svg "$@" | tee runs/load/load.txt
