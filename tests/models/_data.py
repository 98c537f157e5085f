"""Models and data made in code (no downloads): iris-like data and models trained on it."""

from __future__ import annotations

import functools
import io
import pickle
import warnings
from typing import Any

import numpy as np

# Means and spreads of the three iris species (sepal/petal length/width, cm).
_MEANS = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
_SPREADS = np.array([[0.35, 0.38, 0.17, 0.1], [0.5, 0.3, 0.47, 0.2], [0.6, 0.3, 0.55, 0.27]])


def iris(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """150 rows, 4 features, 3 classes of 50, like Fisher's iris."""
    rng = np.random.default_rng(seed)
    X = np.concatenate(
        [rng.normal(m, s, size=(50, 4)) for m, s in zip(_MEANS, _SPREADS, strict=True)]
    )
    y = np.repeat(np.arange(3), 50)
    return X.astype(np.float32), y


@functools.cache  # trained once per session: tests only read it
def sklearn_model(kind: str = "logreg", seed: int = 0) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = iris(seed)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=20, random_state=seed).fit(X, y)
    return LogisticRegression(max_iter=500).fit(X, y)


def joblib_bytes(model: Any | None = None) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(model if model is not None else sklearn_model(), buf)
    return buf.getvalue()


def pickle_bytes(obj: Any) -> bytes:
    return pickle.dumps(obj)


def onnx_bytes() -> bytes:
    """A linear classifier over 4 inputs as an ONNX graph: y = x @ W + b (3 scores)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    W = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float32)
    b = np.array([0.5, -0.5, 0.0], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def torchscript_bytes() -> bytes:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.10+ deprecates scripting in favour of torch.export; TorchScript archives
        # remain what serval's torchscript loader reads.
        warnings.filterwarnings("ignore", r"`torch\.jit\.(script|save)`", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), buf)
    return buf.getvalue()


class BigModel:
    """A numpy-backed model of ``nbytes`` bytes, with a close() that records its call."""

    closed: list[str] = []

    def __init__(self, name: str, nbytes: int) -> None:
        self.name = name
        self.weights = np.ones(nbytes // 8, dtype=np.float64)  # ones: pages really touched

    def close(self) -> None:
        BigModel.closed.append(self.name)
