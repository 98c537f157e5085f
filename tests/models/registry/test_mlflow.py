"""The MLflow model registry, against a real local MLflow store (a file store in tmp)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import serval.models
from serval.exceptions import ModelNotFoundError
from serval.models import ModelStore, StoreConfig
from serval.models.registry import ModelRef, make_registry
from serval.models.registry.mlflow import MLflowRegistry
from tests.models import _data


@dataclass(frozen=True)
class Store:
    uri: str


def _log_version(client: Any, name: str, files: dict[str, bytes], tmp: Path) -> str:
    """Log ``files`` as a run's ``model`` directory and register it: the new version."""
    run = client.create_run(client.get_experiment_by_name("serval").experiment_id)
    folder = tmp / run.info.run_id / "model"
    folder.mkdir(parents=True)
    for filename, data in files.items():
        (folder / filename).write_bytes(data)
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
    client.set_terminated(run.info.run_id)
    source = f"{run.info.artifact_uri}/model"
    version = client.create_model_version(name, source, run_id=run.info.run_id)
    return str(version.version)


def _sklearn_dir(kind: str) -> dict[str, bytes]:
    # The layout mlflow.sklearn.log_model writes: the MLmodel names the pickle.
    return {
        "MLmodel": b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
        b"    serialization_format: cloudpickle\n",
        "model.pkl": pickle.dumps(_data.sklearn_model(kind)),
        "requirements.txt": b"scikit-learn\n",
        "conda.yaml": b"name: env\n",
    }


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """iris 1 (logistic regression), 2 (forest), alias champion -> 1; onnx-net 1."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        # MLflow 3 keeps the file store behind an opt-in; sqlite needs sqlalchemy.
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (tmp / "mlruns").as_uri()
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_experiment("serval")
        client.create_registered_model("iris")
        assert _log_version(client, "iris", _sklearn_dir("logreg"), tmp) == "1"
        assert _log_version(client, "iris", _sklearn_dir("forest"), tmp) == "2"
        client.set_registered_model_alias("iris", "champion", "1")
        client.create_registered_model("onnx-net")
        onnx_dir = {
            "MLmodel": b"flavors:\n  onnx:\n    data: model.onnx\n",
            "model.onnx": _data.onnx_bytes(),
        }
        _log_version(client, "onnx-net", onnx_dir, tmp)
        yield Store(uri)


@pytest.mark.parametrize(
    ("model_id", "version"),
    [
        ("iris", "2"),
        ("iris@1", "1"),
        ("models:/iris/1", "1"),
        ("iris@champion", "1"),
        ("models:/iris@champion", "1"),
    ],
)
async def test_resolves_versions_and_aliases(
    mlflow_store: Store, model_id: str, version: str
) -> None:
    registry = MLflowRegistry(mlflow_store.uri)
    assert await registry.resolve(model_id) == ModelRef("iris", version)


async def test_lists_versions_and_aliases(mlflow_store: Store) -> None:
    registry = MLflowRegistry(mlflow_store.uri)
    assert await registry.versions("iris") == ["1", "2"]
    assert await registry.aliases("iris") == {"champion": "1"}
    assert registry.identity == f"mlflow:{mlflow_store.uri}"


@pytest.mark.parametrize("model_id", ["tenant404", "iris@9", "iris@staging", "models:/nope/1"])
async def test_unknown_ids_are_not_found_and_named(mlflow_store: Store, model_id: str) -> None:
    registry = MLflowRegistry(mlflow_store.uri)
    with pytest.raises(ModelNotFoundError) as caught:
        await registry.resolve(model_id)
    assert model_id in str(caught.value) or model_id.split("@")[0] in str(caught.value)


async def test_fetches_the_file_the_mlmodel_names(mlflow_store: Store) -> None:
    registry = MLflowRegistry(mlflow_store.uri)
    artifact = await registry.fetch(ModelRef("iris", "2"))
    assert artifact.filename == "model.pkl"
    assert type(pickle.loads(artifact.data)).__name__ == "RandomForestClassifier"
    onnx = await registry.fetch(await registry.resolve("onnx-net"))
    assert onnx.filename == "model.onnx"


async def test_serval_models_load_from_mlflow(mlflow_store: Store) -> None:
    serval.models.configure(registry=f"mlflow:{mlflow_store.uri}", warm="memory")
    X, y = _data.iris()
    champion = await serval.models.load("models:/iris@champion")
    latest = await serval.models.load("iris")
    assert type(champion).__name__ == "LogisticRegression"
    assert type(latest).__name__ == "RandomForestClassifier"
    assert (champion.predict(X) == y).mean() > 0.9
    net = await serval.models.load("onnx-net")
    assert net.predict(np.ones((2, 4), dtype=np.float32)).shape == (2, 3)
    with pytest.raises(ModelNotFoundError, match="tenant404"):
        await serval.models.load("tenant404")


async def test_made_from_a_registry_string(mlflow_store: Store) -> None:
    registry = make_registry(f"mlflow:{mlflow_store.uri}")
    assert isinstance(registry, MLflowRegistry)
    store = ModelStore.from_config(StoreConfig(registry=f"mlflow:{mlflow_store.uri}", warm="none"))
    assert store.warm is None
    assert (await store.resolve("iris@champion")).version == "1"
    await store.close()
