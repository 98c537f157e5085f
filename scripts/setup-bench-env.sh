#!/usr/bin/env bash
# Create the benchmark environment: serval and the systems it is measured against, side
# by side in one virtualenv, and MLServer in a second one (`make bench-env`). Everything
# comes from the package index (pip); nothing else is downloaded, now or when the
# benchmarks run.
#
#   bash scripts/setup-bench-env.sh [python3.11] [.venv-bench] [.venv-mlserver]
#
# Peers: Ray Serve 2.x (the API serval follows), LitServe (hello world and batching),
# MLServer (the Open Inference Protocol). scikit-learn and joblib: the many-models
# tenants; matplotlib: the chart; wrk, the load generator, is a system package
# (scripts/ensure-services.sh installs it; without it the benchmarks fall back to their
# own multi-process asyncio generator).
#
# MLServer gets a virtualenv of its own: mlserver 1.7.1 pins fastapi<0.116 (so
# starlette<0.47) and protobuf<7, and installed beside the others it would downgrade
# fastapi, starlette and protobuf under serval, Ray Serve and LitServe (they would be
# measured on another stack than users get). The benchmark runs its `mlserver` command
# as a separate process anyway; its scikit-learn is pinned to the bench env's, so both
# load the same joblib file with the same code.
set -euo pipefail
python=${1:-python3.11}
venv=${2:-.venv-bench}
mlserver_venv=${3:-.venv-mlserver}
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
sklearn=$("$venv/bin/python" -c 'from importlib import metadata; print(metadata.version("scikit-learn"))')
if [ ! -x "$mlserver_venv/bin/python" ]; then
  "$python" -m venv "$mlserver_venv"
fi
"$mlserver_venv/bin/python" -m pip install --quiet --upgrade pip
# httptools: MLServer needs only plain uvicorn (whose HTTP parser is then h11); with
# uvicorn's fast parser, as `uvicorn[standard]` brings, it answers 9-16% more requests
# here. The benchmark measures both (it hides httptools for the pip-install run).
"$mlserver_venv/bin/python" -m pip install --quiet \
  "mlserver==1.7.1" \
  "mlserver-sklearn==1.7.1" \
  "scikit-learn==$sklearn" \
  "httptools==0.9.0"
"$mlserver_venv/bin/python" -m pip check
echo "mlserver env: $("$mlserver_venv/bin/mlserver" --version), scikit-learn $sklearn"
