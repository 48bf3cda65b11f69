"""Run an ONNX model in onnxruntime on the `input` tensor of a safetensors file and write its
output as `logits` (privlin's ONNX tests: parity of exported models both ways).

    python onnx_run.py --model M.onnx --input in.safetensors --out out.safetensors
"""

import argparse

import onnxruntime as ort
from safetensors.numpy import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    x = load_file(a.input)["input"]
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    save_file({"logits": y}, a.out)


if __name__ == "__main__":
    main()
