#!/usr/bin/env bash
# Idempotent set-up: a project-local virtual environment with PyTorch 2.11.0 from PyPI
# (the libtorch that tch 0.24.0 is made for), numpy and safetensors for the PyTorch twins, onnx
# and onnxruntime for the ONNX tests,
# and the `.libtorch` link that .cargo/config.toml points LIBTORCH at.
#   bash scripts/setup.sh --ray   also installs Ray (the cluster executor; the tests need it)
set -euo pipefail
RAY=0
for arg in "$@"; do
  case "$arg" in
    --ray) RAY=1 ;;
    *) echo "setup.sh: unknown option $arg (expected --ray)" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
TORCH_VERSION=2.11.0
RAY_VERSION=2.60.0
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "privlin setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, numpy, safetensors, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "privlin setup: installing torch==$TORCH_VERSION numpy safetensors into .venv (about 2.6 GB of wheels)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy safetensors
fi
# onnx (torch.onnx.export writes with it) and onnxruntime (the reference the ONNX tests compare
# against): `privlin import` / `export-onnx` themselves need neither.
if ! .venv/bin/python -c "import onnx, onnxruntime" 2>/dev/null; then
  echo "privlin setup: installing onnx and onnxruntime into .venv (ONNX export from PyTorch, the ONNX tests)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check onnx onnxruntime
fi
torch_dir="$(.venv/bin/python -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
if [ "$(readlink .libtorch 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" .libtorch
fi
if [ "$RAY" = 1 ] && ! .venv/bin/python -c "import ray" 2>/dev/null; then
  echo "privlin setup: installing ray into .venv (the cluster executor)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "ray==$RAY_VERSION"
fi
