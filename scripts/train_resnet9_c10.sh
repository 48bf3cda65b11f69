#!/usr/bin/env bash
# The ResNet-9 of the Shapley studies (width x0.25, 8 epochs on 90 % of ../shared/data/cifar10,
# 10 % held out for utilities), trained into $OUT/ar unless it is there; resumes a killed run.
# Called by scripts/shapley_resnet9.sh and scripts/shapley_utilities_resnet9.sh with P, OUT, DATA set.
set -euo pipefail
if [ ! -f "$OUT/ar/model.safetensors" ]; then
  "$P" train --arch resnet9 --width 0.25 --data "$DATA" --holdout 0.1 --epochs 8 --batch-size 256 \
    --lr 0.2 --schedule onecycle --channels-last --out "$OUT/ar" --resume
fi
