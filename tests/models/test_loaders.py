"""Model files into model objects: scikit-learn/joblib, pickle, ONNX, TorchScript, yours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from serval.exceptions import ConfigError, ModelLoadError
from serval.models import ModelStore
from serval.models.loaders import OnnxModel, load_artifact, loader_for
from serval.models.registry import Artifact, MemoryRegistry, ModelRef
from tests.models import _data

X, Y = _data.iris()


def artifact(filename: str, data: bytes) -> Artifact:
    return Artifact(ModelRef("m", "1"), filename, data)


def test_scikit_learn_through_joblib() -> None:
    model = load_artifact(artifact("model.joblib", _data.joblib_bytes()))
    assert (model.predict(X) == Y).mean() > 0.9


def test_plain_pickle() -> None:
    for name in ("model.pkl", "model.pickle"):
        assert load_artifact(artifact(name, _data.pickle_bytes({"w": [1, 2]}))) == {"w": [1, 2]}


def test_onnx_through_onnxruntime() -> None:
    data = _data.onnx_bytes()
    model = load_artifact(artifact("model.onnx", data))
    assert isinstance(model, OnnxModel)
    assert model.input_names == ["x"] and model.output_names == ["y"]
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), [[5.5, 5.5, 7.0]])
    (y,) = model.run({"x": x})
    np.testing.assert_allclose(y, [[5.5, 5.5, 7.0]])
    assert model.__serval_nbytes__() == len(data)
    assert repr(model) == "OnnxModel(inputs=['x'], outputs=['y'])"


def test_torchscript() -> None:
    import torch

    for name in ("model.pt", "model.ts", "model.torchscript"):
        model = load_artifact(artifact(name, _data.torchscript_bytes()))
        assert isinstance(model, torch.jit.ScriptModule) and not model.training
        with torch.no_grad():
            assert model(torch.from_numpy(X[:5])).shape == (5, 3)


def upper(art: Artifact) -> str:
    """A loader named by 'module:function'."""
    return art.data.decode().upper()


def test_a_loader_you_name_or_pass() -> None:
    assert (
        load_artifact(artifact("weights.txt", b"abc"), "tests.models.test_loaders:upper") == "ABC"
    )
    assert load_artifact(artifact("model.joblib", b"abc"), upper) == "ABC"  # beats the extension
    assert loader_for("model.bin", "pickle").__name__ == "load_pickle"


def test_no_loader_fits() -> None:
    with pytest.raises(ValueError, match=r"no loader for 'weights.bin': known extensions"):
        loader_for("weights.bin")
    with pytest.raises(ConfigError, match="invalid loader 'safetensors'"):
        loader_for("model.bin", "safetensors")


KINDS: dict[str, tuple[Callable[[], bytes], Callable[[Any], bool]]] = {
    "model.joblib": (_data.joblib_bytes, lambda m: m.predict(X[:2]).shape == (2,)),
    "model.onnx": (_data.onnx_bytes, lambda m: m.predict(X[:2]).shape == (2, 3)),
    "model.pt": (_data.torchscript_bytes, lambda m: not m.training),
    "model.pkl": (lambda: _data.pickle_bytes([1, 2, 3]), lambda m: m == [1, 2, 3]),
}


@pytest.mark.parametrize("filename", list(KINDS))
async def test_every_kind_loads_through_the_store(filename: str) -> None:
    make, check = KINDS[filename]
    registry = MemoryRegistry()
    registry.add("tenant", "1", filename, make())
    store = ModelStore(registry)
    assert check(await store.load("tenant"))
    await store.close()


async def test_a_user_callable_loader_for_the_whole_store() -> None:
    registry = MemoryRegistry()
    registry.add("tenant", "1", "weights.txt", b"hello")
    store = ModelStore(registry, loader=upper)
    assert await store.load("tenant") == "HELLO"
    await store.close()


async def test_an_unknown_file_type_is_a_load_error_naming_the_model() -> None:
    registry = MemoryRegistry()
    registry.add("tenant", "1", "weights.bin", b"...")
    with pytest.raises(ModelLoadError, match=r"'tenant'.*tenant@1: no loader for 'weights.bin'"):
        await ModelStore(registry).load("tenant")
