#!/usr/bin/env bash
# Create the project's virtualenv and install serval with every extra and the dev tools.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# PyTorch: the CPU build (a plain `torch` requirement would pull the CUDA wheels).
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet -e ".[all,dev]"
