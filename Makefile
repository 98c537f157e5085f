# serval — the two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.serval-installed

.PHONY: setup run test test-fast faults lint typecheck bench bench-env clean services oip-proto

setup: $(STAMP)

$(STAMP): pyproject.toml
	bash scripts/setup-venv.sh "$(PYTHON)" "$(VENV)"
	touch $(STAMP)

run: setup
	$(PY) -m serval.apps.many_models_demo

services:
	bash scripts/ensure-services.sh

test: setup services
	$(PY) -m pytest -q -p no:cacheprovider

# The fault suite alone (tests/faults): kills, outages, overload; ends with one table of
# requests sent, failed and lost and the recovery time of each fault.
faults: setup services
	$(PY) -m pytest -q -p no:cacheprovider -m faults tests/faults

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check serval tests benchmarks examples
	$(VENV)/bin/mypy

# Benchmarks: serval against Ray Serve, LitServe, MLServer and the limits, in their own
# virtualenvs (benchmarks/bench.py). `make bench QUICK=1` (< 3 min), `make bench
# SCENARIO=many_models`, `make bench SCENARIO=oip` (OIP v2 REST vs MLServer).
BENCH_PYTHON ?= python3.11
BENCH_VENV ?= .venv-bench
MLSERVER_VENV ?= .venv-mlserver
BENCH_STAMP := $(BENCH_VENV)/.serval-bench-installed

bench-env: $(BENCH_STAMP)

$(BENCH_STAMP): pyproject.toml scripts/setup-bench-env.sh
	bash scripts/setup-bench-env.sh "$(BENCH_PYTHON)" "$(BENCH_VENV)" "$(MLSERVER_VENV)"
	touch $(BENCH_STAMP)

bench: bench-env
	$(BENCH_VENV)/bin/python benchmarks/bench.py $(if $(QUICK),--quick) \
		$(if $(SCENARIO),--scenario $(SCENARIO)) --mlserver $(MLSERVER_VENV)/bin/mlserver \
		$(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# The OIP v2 gRPC stubs (committed): protobuf 6.31 gencode (readable by protobuf 6.31+ and
# 7), in a private descriptor pool so tritonclient.grpc's 'inference' messages can share
# a process with them.
oip-proto:
	$(PY) -m pip install --target .oip-grpc-tools 'grpcio-tools>=1.71,<1.76' 'protobuf>=6.31,<7'
	PYTHONPATH=.oip-grpc-tools $(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
		serval/protocols/oip/grpc_predict_v2.proto
	sed -i 's/_descriptor_pool.Default().AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \
		serval/protocols/oip/grpc_predict_v2_pb2.py
	rm -rf .oip-grpc-tools
