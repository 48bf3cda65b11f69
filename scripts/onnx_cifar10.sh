#!/usr/bin/env bash
# Imported networks on ../shared/data/cifar10 (docs/results.md, "Networks brought in through
# ONNX"): a torchvision-style ResNet-18 and a MobileNetV2-style network written in PyTorch
# (python/onnx_models.py, base width 16, untrained), and the zoo's ResNet-18 (width 0.25) exported
# to ONNX and imported again, each trained by privlin from the import (`model.from`), then the
# `privshap` and `uniform` presets at 3 % and 10 % (seed 0) and at 3 % with seeds 1 and 2. The zoo
# ResNet-18 itself runs beside them from the same starting weights: imported and zoo should agree
# within noise. Settings of configs/cifar10-design.toml scaled to fit a session on a 2-core VM:
# 300 training images per class (270 after the hold-out), 6 all-ReLU epochs, 1 + 1 epochs of mask
# learning and fine-tuning per point, a 200-image Shapley utility, channels-last off (depthwise
# convolutions), no private inference in the sweeps (measured afterwards with `pi measure`).
#   bash scripts/onnx_cifar10.sh        # OUT (default runs/c10-onnx), SEEDS (default 0 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh > /dev/null
cargo build --release --quiet -p privlin-cli
out=${OUT:-runs/c10-onnx}
mkdir -p "$out/onnx"
# A copy, so that rebuilding the binary meanwhile does not change the run.
cp target/release/privlin "$out/privlin-bin"
P="$out/privlin-bin"
export LD_LIBRARY_PATH="$PWD/.libtorch/lib"
data=../shared/data/cifar10
.venv/bin/python python/onnx_models.py --out "$out/onnx" --width 16 --batch 2 --models tv_resnet18,mobilenet_v2 --keep-batchnorm
# The zoo ResNet-18 at its starting weights (one epoch on 200 images, the quickest checkpoint), and
# the same network through ONNX.
[ -e "$out/zoo-init/model.safetensors" ] || "$P" train --arch resnet18 --width 0.25 --data "$data" \
    --train-per-class 20 --test-per-class 1 --batch-size 64 --epochs 1 --out "$out/zoo-init" > /dev/null
"$P" export-onnx --ckpt "$out/zoo-init" --out "$out/onnx/zoo_resnet18.onnx" --keep-batchnorm
norm=$(.venv/bin/python -c "import json; n = json.load(open('$out/zoo-init/spec.json'))['normalization']; print(','.join(map(str, n['mean'])), ','.join(map(str, n['std'])))")
read -r mean std <<< "$norm"
for m in zoo_resnet18 tv_resnet18 mobilenet_v2; do
    [ -e "$out/imported/$m/spec.json" ] || "$P" import "$out/onnx/$m.onnx" --out "$out/imported/$m" --mean "$mean" --std "$std"
done
arms=("zoo:$out/zoo-init" "zoo_imported:$out/imported/zoo_resnet18" "tv_resnet18:$out/imported/tv_resnet18" "mobilenet_v2:$out/imported/mobilenet_v2")
for arm in "${arms[@]}"; do
    name=${arm%%:*}; from=${arm#*:}
    for seed in ${SEEDS:-0 1 2}; do
        budgets=3%
        [ "$seed" = 0 ] && budgets=3%,10%
        for preset in privshap uniform; do
            "$P" sweep configs/cifar10-design.toml --set "out=\"$out/$name\"" --set "model.from=\"$from\"" \
                --set data.train_per_class=300 --set train.epochs=6 --set train.channels_last=false \
                --set linearize.train.epochs=1 --set finetune.train.epochs=1 \
                --set pi.images=0 --set importance.utility_size=200 \
                --set linearize.train.seed=$seed --set finetune.train.seed=$seed \
                --presets $preset --tag "$preset-s$seed" --budgets "$budgets"
        done
    done
done
# Under the protocol: seed 0's privshap models at both budgets, four test images, one thread per
# party (rebuilt binary: private inference of imported graphs).
export LD_LIBRARY_PATH="$PWD/.libtorch/lib"
for arm in "${arms[@]}"; do
    name=${arm%%:*}
    for b in 3pct 10pct; do
        target/release/privlin pi measure --ckpt "$out/$name/sweep/privshap-s0/$b/final" \
            --out "$out/pi/$name-$b" --images 4 --threads 1 > /dev/null
    done
done
.venv/bin/python python/sweep_summary.py "$out/zoo" "$out/zoo_imported" "$out/tv_resnet18" "$out/mobilenet_v2"
