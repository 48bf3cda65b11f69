"""Run N training steps of the PyTorch twin (train-mode BN, cross-entropy, torch.optim.SGD with
momentum 0.9, weight decay 5e-4) from privlin's weights and batch; write the resulting weights."""

import argparse
import json

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import privlin_twin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", required=True, help="safetensors with `input` and `labels`")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: PyTorch's default)")
    a = ap.parse_args()
    if a.threads > 0:
        # The Rust side pins the same count: a comparison of the optimizer, not of threading.
        torch.set_num_threads(a.threads)
    model = privlin_twin.load_safetensors(privlin_twin.build_from_spec(json.load(open(a.spec))), a.weights)
    batch = load_file(a.batch)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(a.steps):
        opt.zero_grad()
        F.cross_entropy(model(batch["input"]), batch["labels"]).backward()
        opt.step()
    privlin_twin.save_safetensors(model, a.out)


if __name__ == "__main__":
    main()
