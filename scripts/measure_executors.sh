#!/usr/bin/env bash
# Executors and utility workers measured on this machine (docs/results.md, "The pipeline as a
# plan of stages"):
#  1. one 2-preset x 3-budget sweep on the built-in synthetic data (the demo's narrow ResNet-18,
#     shortened: 300 images per class, 4 + 1 + 1 epochs, 2 private inferences per point), run by
#     the in-process executor, by `--jobs 2`, and by Ray with 2 CPUs; wall-clock, the sum of the
#     stages' own seconds (from their stamps) and the difference per stage (scheduling overhead);
#  2. the exact Shapley game of the ResNet-9 of scripts/train_resnet9_c10.sh (8 players, 256
#     coalitions, 2,000 held-out CIFAR-10 images) with 1 utility worker, 2 local workers and
#     2 Ray actors; their values are compared bit for bit.
#   bash scripts/measure_executors.sh      (about 30 minutes on a 2-core CPU; resumes nothing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --ray
cargo build --release --quiet -p privlin-cli
P=$PWD/target/release/privlin
OUT=${OUT:-runs/executors}
rm -rf "$OUT"
mkdir -p "$OUT"
sweep() { # sweep NAME ARGS...
  local name=$1; shift
  local dir="$OUT/$name"
  mkdir -p "$dir"
  sed -e "s|^out = .*|out = \"$dir/run\"|" configs/demo.toml > "$dir/run.toml"
  local t0; t0=$(date +%s.%N)
  "$P" sweep "$dir/run.toml" --budgets 2%,5%,10% --presets privshap,relupruner \
    --set data.train_per_class=300 --set data.test_per_class=50 --set train.epochs=4 \
    --set linearize.train.epochs=1 --set finetune.train.epochs=1 --set pi.images=2 \
    --set device=\"cpu\" "$@" > "$dir/log.txt" 2>&1
  local t1; t1=$(date +%s.%N)
  python3 - "$name" "$dir" "$t0" "$t1" <<'PY'
import json, glob, sys
name, d, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
stamps = [json.load(open(p)) for p in glob.glob(f"{d}/run/stages/**/*.json", recursive=True) if not p.endswith("plan.json")]
work = sum(s.get("seconds") or 0 for s in stamps)
wall = t1 - t0
print(f"| {name} | {len(stamps)} | {wall:.1f} | {work:.1f} |", flush=True)
json.dump({"name": name, "stages": len(stamps), "wall_s": wall, "stage_s": work}, open(f"{d}/measure.json", "w"))
PY
}
echo "| executor | stages | wall-clock (s) | sum of stage seconds (s) |"
echo "|---|---|---|---|"
sweep sequential
sweep jobs2 --jobs 2
sweep ray2 --executor ray --ray-cpus 2
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
m = {n: json.load(open(f"{out}/{n}/measure.json")) for n in ["sequential", "jobs2", "ray2"]}
base = m["sequential"]["wall_s"]
for n, v in m.items():
    slots = 1 if n == "sequential" else 2
    print(f"{n}: wall-clock ratio to sequential {v['wall_s'] / base:.2f}; slot-seconds outside any "
          f"stage ({slots} slot(s) x wall-clock - stage seconds), per stage: "
          f"{(slots * v['wall_s'] - v['stage_s']) / v['stages']:.2f} s")
csv = {n: open(f"{out}/{n}/run/sweep.csv").read().splitlines() for n in m}
def strip(lines):
    h = lines[0].split(",")
    keep = [i for i, c in enumerate(h) if not c.endswith("_s") and "_s_" not in c]
    return [[l.split(",")[i] for i in keep] for l in lines]
# Numbers are identical at the same libtorch thread count: the in-process run uses every core,
# the child processes and Ray tasks one thread each.
for a, b in [("jobs2", "ray2"), ("sequential", "jobs2")]:
    print(f"sweep.csv numbers (all but the seconds) identical, {a} vs {b}: {strip(csv[a]) == strip(csv[b])}")
PY
# 2. The ResNet-9 exact game with 1 and 2 utility workers.
R9=${R9:-runs/resnet9-c10}
P=$P OUT=$R9 DATA=${DATA:-../shared/data/cifar10} bash scripts/train_resnet9_c10.sh
game() { # game NAME ARGS...
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$P" importance --ckpt "$R9/ar" --method shapley-exact --utility-size 2000 --device cpu \
    --out "$OUT/game-$name.json" --utility-cache "$OUT/game-$name-cache.json" "$@" > "$OUT/game-$name.txt" 2>&1
  local t1; t1=$(date +%s.%N)
  python3 -c "print(f'| $name | {$t1 - $t0:.1f} |')"
}
echo "| utility workers (exact ResNet-9 game, 256 coalitions) | wall-clock (s) |"
echo "|---|---|"
game one
game local2 --workers 2
game ray2 --workers 2 --utility-workers ray
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
v = {n: json.load(open(f"{out}/game-{n}.json"))["values"] for n in ["one", "local2", "ray2"]}
u = {n: json.load(open(f"{out}/game-{n}-cache.json"))["utilities"] for n in ["one", "local2", "ray2"]}
print("values identical:", v["one"] == v["local2"] == v["ray2"], "; utilities identical:", u["one"] == u["local2"] == u["ray2"])
print("values:", " ".join(f"{x:.2f}" for x in v["one"]))
PY
