#!/usr/bin/env bash
# The measurements of docs/results.md, "Active ReLUs on OT beside garbled circuits" (issue 34),
# all on this machine, both families in each run:
#   1. one site of 20,000 active ReLUs, end to end per family (pi bench --nonlinear ot);
#   2. the full-width ResNet-18, every ReLU active, HE offline for the weight layers, one inference
#      per family, one thread per party (pi bench --nonlinear gc,ot);
#   3. the demo's narrow ResNet-18 linearized at 1 / 3 / 10 % (runs/he-demo, from
#      `privlin sweep configs/demo.toml --budgets 1%,3%,10% --set out=runs/he-demo`) and the full
#      ResNet-18, both families priced under the wan profile with this machine's calibration
#      (pi families: table, docs/ot-vs-gc.svg);
#   4. the service under load at 1 %: pi load with each family (two clients, pool of two).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/privlin
[ -x "$bin" ] || ./privlin --help > /dev/null
export LD_LIBRARY_PATH="$(ls -d "$PWD"/.venv/lib/python3*/site-packages/torch/lib)"
out=runs/pi
mkdir -p "$out"
demo=runs/he-demo
[ -d "$demo/sweep/privshap/1pct/pi" ] || "$bin" sweep configs/demo.toml --budgets 1%,3%,10% \
    --set out=$demo --set pi.images=4
bash scripts/r18_full_export.sh

echo "== 1. one site of 20,000 active ReLUs"
"$bin" pi bench --relus 20000 --profiles none --nonlinear ot --json "$out/bench-ot-20k.json" \
    | tee "$out/bench-ot-20k.txt"
echo "== 2. full-width ResNet-18, all ReLUs active, HE offline, both families"
"$bin" pi bench --model "$out/r18-full/export" --profiles none --relus 2000 --nonlinear gc,ot \
    --json "$out/bench-r18-full-both.json" | tee "$out/bench-r18-full-both.txt"
echo "== 3. both families priced under wan: narrow ResNet-18 at 1 / 3 / 10 % (plotted), full ResNet-18"
"$bin" pi families --model "$demo/sweep/privshap/1pct/pi" --model "$demo/sweep/privshap/3pct/pi" \
    --model "$demo/sweep/privshap/10pct/pi" --label "1 %" --label "3 %" --label "10 %" \
    --profile wan --plot docs/ot-vs-gc.svg --json "$out/families-wan.json" | tee "$out/families-wan.txt"
"$bin" pi families --model "$out/r18-full/export" --label "r18 full" --profile wan \
    --json "$out/families-wan-r18.json" | tee "$out/families-wan-r18.txt"
echo "== 4. the service under load at 1 %, each family"
for f in gc ot; do
    "$bin" pi load --model "$demo/sweep/privshap/1pct/pi" --label "1 % $f" --nonlinear $f \
        --rates "${RATES:-0.5,1,1.5}" --duration "${DURATION:-30}" --clients 2 --pool 2 \
        --json "$out/load-1pct-$f.json" | tee "$out/load-1pct-$f.txt"
done
