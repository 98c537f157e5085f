"""Model metadata (inputs and outputs: names, datatypes, shapes) read from the model.

=====================  ==============================================================
model                  metadata
=====================  ==============================================================
``oip.json`` beside    exactly what the file says (see :data:`METADATA_FILE`)
the model file
scikit-learn           one input ``input-0`` of shape ``[-1, n_features_in_]`` (FP64);
(``predict``)          outputs ``predict`` (``[-1]``, the classes' datatype) and, for
                       classifiers, ``predict_proba`` (``[-1, len(classes_)]``, FP64)
ONNX                   the graph's inputs and outputs (symbolic dimensions are -1)
TorchScript            what the module declares in an ``oip_metadata`` attribute (a
                       dict like ``oip.json``), else ``INPUT__0`` → ``OUTPUT__0``, FP32,
                       any shape (Triton's naming)
=====================  ==============================================================

The metadata file, ``oip.json`` in the model's version directory (or in the model's
directory, for every version)::

    {"platform": "pytorch_torchscript",
     "inputs":  [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
     "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}]}

``"batching": false`` in it keeps the model's infer calls out of batches (a model whose
rows depend on each other: see :mod:`serval.protocols.oip.batching`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from serval.protocols.oip.errors import InvalidTensorError
from serval.protocols.oip.tensors import DATATYPES, Tensor, datatype_of

__all__ = ["METADATA_FILE", "ModelMetadata", "TensorSpec", "metadata_of", "parse_metadata"]

METADATA_FILE = "oip.json"

_ONNX_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


@dataclass(frozen=True)
class TensorSpec:
    """A declared tensor; ``shape`` uses -1 for any size, ``None`` for any shape."""

    name: str
    datatype: str
    shape: tuple[int, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape or [-1])}

    def check(self, tensor: Tensor) -> None:
        """:class:`InvalidTensorError` naming the input when ``tensor`` does not fit."""
        if tensor.datatype != self.datatype:
            raise InvalidTensorError(
                f"input {self.name!r}: expected datatype {self.datatype}, got {tensor.datatype}"
            )
        if self.shape is None:
            return
        fits = len(tensor.shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, tensor.shape, strict=True)
        )
        if not fits:
            raise InvalidTensorError(
                f"input {self.name!r}: expected shape {list(self.shape)}, got {tensor.shape}"
            )


@dataclass(frozen=True)
class ModelMetadata:
    """What a model takes and gives."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = ""
    batching: bool = True  # False: never stack this model's calls (oip.json "batching")

    def to_json(self, name: str, versions: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "versions": versions,
            "platform": self.platform,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }


def _specs(items: Any, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(items, list):
        raise ValueError(f"{where} must be a list of {{name, datatype, shape}}")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"each of {where} needs a 'name'")
        datatype = item.get("datatype")
        if datatype not in DATATYPES:
            raise ValueError(f"{where} {item['name']!r}: unknown datatype {datatype!r}")
        shape = item.get("shape")
        if shape is not None and not (
            isinstance(shape, list) and all(isinstance(d, int) and d >= -1 for d in shape)
        ):
            raise ValueError(f"{where} {item['name']!r}: 'shape' must be a list of ints >= -1")
        out.append(TensorSpec(item["name"], datatype, tuple(shape) if shape is not None else None))
    return tuple(out)


def parse_metadata(raw: bytes | str | dict[str, Any]) -> ModelMetadata:
    """The metadata an ``oip.json`` (or a module's ``oip_metadata``) declares;
    ``ValueError`` saying what is wrong."""
    obj = json.loads(raw) if isinstance(raw, bytes | str) else raw
    if not isinstance(obj, dict):
        raise ValueError(f"{METADATA_FILE} must hold a JSON object")
    batching = obj.get("batching", True)
    if not isinstance(batching, bool):
        raise ValueError(f"{METADATA_FILE}: 'batching' must be true or false, not {batching!r}")
    return ModelMetadata(
        _specs(obj.get("inputs"), "inputs"),
        _specs(obj.get("outputs"), "outputs"),
        str(obj.get("platform", "")),
        batching,
    )


def metadata_of(model: Any) -> ModelMetadata:
    """The metadata read from ``model`` itself (see the module docs)."""
    from serval.models.loaders import OnnxModel

    if isinstance(model, OnnxModel):
        return _onnx(model)
    declared = getattr(model, "oip_metadata", None)
    if isinstance(declared, dict):
        return parse_metadata(declared)
    if _is_torch(model):
        return ModelMetadata(
            (TensorSpec("INPUT__0", "FP32", None),),
            (TensorSpec("OUTPUT__0", "FP32", None),),
            "pytorch_torchscript",
        )
    if hasattr(model, "predict"):
        return _sklearn(model)
    raise TypeError(
        f"cannot read the inputs and outputs of a {type(model).__name__}: put a "
        f"{METADATA_FILE} beside the model file"
    )


def _is_torch(model: Any) -> bool:
    return any(k.__module__.startswith("torch") for k in type(model).__mro__)


def _onnx(model: Any) -> ModelMetadata:
    def spec(arg: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        return TensorSpec(arg.name, _ONNX_TYPES.get(arg.type, "FP32"), shape)

    return ModelMetadata(
        tuple(spec(i) for i in model.session.get_inputs()),
        tuple(spec(o) for o in model.session.get_outputs()),
        "onnxruntime_onnx",
    )


def _sklearn(model: Any) -> ModelMetadata:
    n = getattr(model, "n_features_in_", None)
    inputs = (TensorSpec("input-0", "FP64", (-1, int(n)) if isinstance(n, int) else None),)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        arr = np.asarray(classes)
        label = datatype_of(arr) if arr.dtype.kind in "iufb" else "BYTES"
        outputs: tuple[TensorSpec, ...] = (TensorSpec("predict", label, (-1,)),)
        if hasattr(model, "predict_proba"):
            outputs += (TensorSpec("predict_proba", "FP64", (-1, len(arr))),)
    else:
        outputs = (TensorSpec("predict", "FP64", (-1,)),)
    return ModelMetadata(inputs, outputs, "sklearn")
