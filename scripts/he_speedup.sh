#!/usr/bin/env bash
# Issue 37: the weight layers' HE offline phase of an earlier commit and of this checkout, side by
# side in one run on this machine (one inference each, one thread per party, `pi bench
# --profiles none --nonlinear ot`, the server's default 2 GiB weight cache): the full-width
# ResNet-18 with every ReLU active and the narrow ResNet-18 (width x0.25; its weight layers, and
# so its HE phase, are the same at every ReLU budget). Prints the weight layers' offline seconds
# and bytes (`offline_linear_s`, `offline_linear_bytes` of `pi bench --json`).
# Usage: bash scripts/he_speedup.sh [OLD_REV]   (default 3a1fdb6, before the issue-37 speed-ups)
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev=${1:-3a1fdb6}
out=runs/he-speedup
mkdir -p "$out"
bash scripts/r18_full_export.sh
bin=./target/release/privlin
narrow=runs/pi/r18-narrow
if [ ! -f "$narrow/export/model.json" ]; then
    "$bin" train --arch resnet18 --width 0.25 --epochs 1 --data ../shared/data/cifar10 \
        --train-per-class 20 --test-per-class 2 --batch-size 50 --out "$narrow/ar" --device cpu
    "$bin" pi export --ckpt "$narrow/ar" --out "$narrow/export"
fi
old_bin=$out/privlin-$old_rev
if [ ! -x "$old_bin" ]; then
    tree=$(mktemp -d)/privlin-$old_rev
    git worktree add --detach "$tree" "$old_rev"
    ln -s "$PWD/.libtorch" "$tree/.libtorch"
    (cd "$tree" && CARGO_TARGET_DIR="$OLDPWD/target" cargo build --release -p privlin-cli)
    cp target/release/privlin "$old_bin"
    git worktree remove --force "$tree"
    cargo build --release -p privlin-cli
fi
# Old and new alternate, twice, so that the machine's drift (this VM's timings vary by up to
# 30 % between runs) falls on both.
for rep in 1 2; do
    for model in r18-full r18-narrow; do
        export_dir=runs/pi/$model/export
        for which in old new; do
            b=$bin
            [ "$which" = old ] && b=$old_bin
            echo "== run $rep: $model, $which ($b)"
            "$b" pi bench --model "$export_dir" --profiles none --relus 2000 --nonlinear ot \
                --json "$out/$model-$which-$rep.json" > "$out/$model-$which-$rep.txt"
        done
    done
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print(f"{'model':<11} {'code':<4} {'HE offline s (run 1, run 2)':>28} {'HE offline MB':>14} {'whole offline s':>16}")
for model in ["r18-full", "r18-narrow"]:
    for which in ["old", "new"]:
        runs = [json.load(open(f"{out}/{model}-{which}-{r}.json"))["whole_model"][0] for r in (1, 2)]
        he = ", ".join(f"{w['offline_linear_s']:.3f}" for w in runs)
        whole = ", ".join(f"{w['offline_s']:.2f}" for w in runs)
        print(f"{model:<11} {which:<4} {he:>28} {runs[0]['offline_linear_bytes'] / 1e6:>14.2f} {whole:>16}")
PY
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
