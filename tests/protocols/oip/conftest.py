"""A real serval instance serving the many-models app (OIP REST and gRPC) over a
directory registry of generated models: scikit-learn tenants, an ONNX graph, a
TorchScript module with an ``oip.json``, two versions and an alias, a broken file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np
import pytest

import serval
from serval.apps._tenants import TenantSpec, generate, write_tenant
from serval.apps.many_models import ManyModelsConfig, build_app
from serval.observability import logs_files
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


def assert_one_info_line_each(served: Served, expected: dict[str, str]) -> None:
    """Every log record mentioning a key of ``expected`` is one short INFO line (no
    traceback), and one of them says the value (``"404 ModelNotFoundError"``)."""
    for token, what in expected.items():

        def logged(token: str = token, what: str = what) -> bool:
            return any(what in r for r in served.records(token))

        wait_for(logged, timeout_s=30, what=f"the log line for {token}")
        for record in served.records(token):
            assert "\n" not in record and "Traceback" not in record, record
            assert " INFO " in record and len(record) < 600, record


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
    _put(root, "exploding", "1", "model.pkl", _exploding_model())
    return root


def _exploding_model() -> bytes:
    """A model whose own code fails (pickled by value: replicas cannot import tests/)."""

    class Exploding:
        n_features_in_ = 4
        classes_ = np.array([0, 1])

        def predict(self, x: Any) -> Any:
            raise ZeroDivisionError("the model's own bug")

    return bytes(cloudpickle.dumps(Exploding()))


@dataclass(frozen=True)
class Served:
    http: str  # host:port, as tritonclient.http takes it
    grpc: str  # host:port, as tritonclient.grpc takes it
    registry: str
    logs: str  # the instance's log directory

    def records(self, token: str) -> list[str]:
        """Log records (a traceback stays with its line) of every serval process that
        mention ``token``, the access log left out."""
        records, _ = logs_files.read(logs_files.select(self.logs))
        return [r for r in records if token in r and "serval.access" not in r]


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
            yield Served(
                f"127.0.0.1:{http_port}",
                f"127.0.0.1:{grpc_port}",
                registry,
                os.path.join(home, "t", "logs"),
            )
        finally:
            serval.shutdown()
            wait_for(lambda: not serval_children(), timeout_s=30, what="serval to exit")
