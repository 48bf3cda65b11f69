"""Export a PyTorch model to ONNX for `privlin import`.

    python python/export_onnx.py --factory my_models.py:make_net --input-size 32 --out net.onnx
        [--weights state_dict.pt] [--keep-batchnorm]

`--factory FILE:FUNCTION` names a function (or class) in FILE that returns the `torch.nn.Module`;
`--weights` loads a state dict into it. The model is exported in eval mode at opset 17 with the
TorchScript exporter (`dynamo=False`: no onnxscript needed), one input of shape
(batch, 3, S, S) and one output of logits. By default PyTorch folds batch norms into the
convolutions; `--keep-batchnorm` keeps them as BatchNormalization nodes so that privlin trains
them (it folds them again when it exports). Needs `onnx` in the venv (scripts/setup.sh installs
it).
"""

import argparse
import importlib.util
import warnings

import torch


def export(model, input_size, path, keep_batchnorm=False, opset=17):
    model = model.eval()
    x = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            x,
            path,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=not keep_batchnorm,
            dynamo=False,
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factory", required=True, help="FILE.py:FUNCTION returning the nn.Module")
    ap.add_argument("--weights", help="a state dict (torch.save) to load")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keep-batchnorm", action="store_true")
    a = ap.parse_args()
    file, _, fn = a.factory.rpartition(":")
    spec = importlib.util.spec_from_file_location("user_models", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = getattr(mod, fn)()
    if a.weights:
        model.load_state_dict(torch.load(a.weights, map_location="cpu"))
    export(model, a.input_size, a.out, keep_batchnorm=a.keep_batchnorm)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
