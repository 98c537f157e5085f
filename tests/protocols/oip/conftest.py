"""A real serval instance serving the many-models app (OIP REST and gRPC) over a
directory registry of generated models: scikit-learn tenants, an ONNX graph, a
TorchScript module with an ``oip.json``, two versions and an alias, a broken file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import serval
from serval.apps._tenants import TenantSpec, generate, write_tenant
from serval.apps.many_models import ManyModelsConfig, build_app
from tests.models._data import onnx_bytes, torchscript_bytes
from tests.utils import free_port, serval_children, short_tmpdir, wait_for

TORCH_META = {
    "platform": "pytorch_torchscript",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}],
}


def _put(root: str, name: str, version: str, filename: str, data: bytes) -> str:
    folder = os.path.join(root, name, version)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("oip-registry"))
    for _ in generate(root, 6, workers=1):
        pass
    # iris: versions 1 and 2 (different seeds), alias "production" -> 1
    write_tenant(root, TenantSpec("iris", 11, 16_000, version=1))
    write_tenant(root, TenantSpec("iris", 22, 16_000, version=2))
    with open(os.path.join(root, "iris", "aliases.json"), "w") as f:
        json.dump({"production": "1"}, f)
    _put(root, "linear", "1", "model.onnx", onnx_bytes())
    _put(root, "torchy", "1", "model.pt", torchscript_bytes())
    with open(os.path.join(root, "torchy", "1", "oip.json"), "w") as f:
        json.dump(TORCH_META, f)
    _put(root, "broken", "1", "model.joblib", b"this is not a joblib file")
    return root


@dataclass(frozen=True)
class Served:
    http: str  # host:port, as tritonclient.http takes it
    grpc: str  # host:port, as tritonclient.grpc takes it
    registry: str


@pytest.fixture(scope="module")
def served(registry: str) -> Iterator[Served]:
    with short_tmpdir() as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERVAL_HOME", home)
        mp.setenv("SERVAL_NAMESPACE", "t")
        http_port, grpc_port = free_port(), free_port()
        try:
            serval.start(
                http_options={"port": http_port, "max_request_body_bytes": 1_000_000},
                grpc_options={
                    "port": grpc_port,
                    "grpc_servicer_functions": [
                        "serval.protocols.oip.grpc:add_GRPCInferenceServiceServicer_to_server"
                    ],
                },
            )
            config = ManyModelsConfig(
                registry=registry,
                warm="none",
                shared_replicas=2,
                max_models_per_replica=8,
                watch_interval_s=0,
            )
            serval.run(build_app(config), name="mm", route_prefix="/")
            yield Served(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", registry)
        finally:
            serval.shutdown()
            wait_for(lambda: not serval_children(), timeout_s=30, what="serval to exit")
