"""Check that privlin and its PyTorch twin agree: load weights and an input batch written by
privlin, write the twin's logits (and, with --export, a fresh twin's weights and logits)."""

import argparse
import json

import torch
from safetensors.torch import load_file, save_file

import privlin_twin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="JSON model spec (privlin's ModelSpec)")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True, help="safetensors with an `input` tensor")
    ap.add_argument("--out", required=True, help="safetensors to write `logits` to")
    ap.add_argument("--export", action="store_true", help="initialise the twin itself and write its weights to --weights")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    spec = json.load(open(a.spec))
    torch.manual_seed(a.seed)
    model = privlin_twin.build_from_spec(spec)
    if a.export:
        # Non-trivial BN statistics so that eval-mode BN is exercised.
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
        privlin_twin.save_safetensors(model, a.weights)
    else:
        privlin_twin.load_safetensors(model, a.weights)
    model.eval()
    x = load_file(a.input)["input"]
    with torch.no_grad():
        logits = model(x)
    save_file({"logits": logits.contiguous()}, a.out)


if __name__ == "__main__":
    main()
