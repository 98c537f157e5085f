#!/usr/bin/env bash
# Create the benchmark environment: serval and the systems it is measured against, side
# by side in one virtualenv (`make bench-env`). Everything comes from the package index
# (pip); nothing else is downloaded, now or when the benchmarks run.
#
#   bash scripts/setup-bench-env.sh [python3.11] [.venv-bench]
#
# Peers: Ray Serve 2.x (the API serval follows), LitServe (hello world and batching).
# scikit-learn and joblib: the many-models tenants; matplotlib: the chart; wrk, the load
# generator, is a system package (scripts/ensure-services.sh installs it; without it the
# benchmarks fall back to their own multi-process asyncio generator).
set -euo pipefail
python=${1:-python3.11}
venv=${2:-.venv-bench}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup-bench-env: $python not found (the peers need Python 3.11: PYTHON=... make bench-env)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# Ray Serve is pinned to its 2.x line: serval's API and the peers' scripts follow it.
"$venv/bin/python" -m pip install --quiet -e . \
  "ray[serve]>=2.30,<3" \
  "litserve>=0.2,<1" \
  "scikit-learn>=1.3,<2" \
  "joblib>=1.3" \
  "numpy>=1.24" \
  "threadpoolctl>=3" \
  "matplotlib>=3.8"
"$venv/bin/python" - <<'EOF'
from importlib import metadata
names = ("serval", "ray", "litserve", "scikit-learn", "matplotlib", "uvicorn")
print("bench env:", ", ".join(f"{n} {metadata.version(n)}" for n in names))
EOF
