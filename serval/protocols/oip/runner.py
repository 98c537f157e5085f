"""Running a model on OIP tensors, in the replica that holds it.

:func:`run` checks the inputs against the model's metadata (names, datatypes, shapes;
errors name the input and what was expected), feeds them to the model the way its
framework wants (scikit-learn ``predict``/``predict_proba``, an onnxruntime session, a
TorchScript module) and returns the requested outputs as tensors of their declared
datatypes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serval.protocols.oip.errors import InvalidTensorError, UnknownOutputError
from serval.protocols.oip.metadata import ModelMetadata, TensorSpec, _is_torch
from serval.protocols.oip.tensors import DATATYPES, Tensor

__all__ = ["check_inputs", "compute", "run", "select_outputs"]


def check_inputs(meta: ModelMetadata, inputs: list[Tensor]) -> list[Tensor]:
    """``inputs`` in the order the model declares them, each checked against its spec."""
    given = {t.name: t for t in inputs}
    declared = [s.name for s in meta.inputs]
    for name in given:
        if name not in declared:
            raise InvalidTensorError(f"unknown input {name!r}: the model takes {declared}")
    ordered = []
    for spec in meta.inputs:
        tensor = given.get(spec.name)
        if tensor is None:
            raise InvalidTensorError(f"missing input {spec.name!r}: the model takes {declared}")
        spec.check(tensor)
        ordered.append(tensor)
    return ordered


def select_outputs(meta: ModelMetadata, requested: list[str] | None) -> list[TensorSpec]:
    """The outputs to compute: the requested ones (each must exist), else all."""
    by_name = {s.name: s for s in meta.outputs}
    if not requested:
        return list(meta.outputs)
    for name in requested:
        if name not in by_name:
            raise UnknownOutputError(
                f"unknown output {name!r}: the model's outputs are {list(by_name)}"
            )
    return [by_name[n] for n in requested]


def run(
    model: Any, meta: ModelMetadata, inputs: list[Tensor], requested: list[str] | None = None
) -> list[Tensor]:
    """The model's outputs for ``inputs`` (see the module docs)."""
    return compute(model, meta, check_inputs(meta, inputs), select_outputs(meta, requested))


def compute(
    model: Any, meta: ModelMetadata, ordered: list[Tensor], wanted: list[TensorSpec]
) -> list[Tensor]:
    """The ``wanted`` outputs for inputs already checked and ordered by
    :func:`check_inputs`."""
    kind = _KINDS.get(type(model)) or _kind_of(model)
    try:
        if kind == "onnx":
            feeds = {t.name: t.data for t in ordered}
            values = model.session.run([s.name for s in wanted], feeds)
        elif kind == "torch":
            values = _torch(model, meta, ordered, wanted)
        else:
            values = [_sklearn(model, ordered[0].data, s.name) for s in wanted]
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InvalidTensorError(
            f"inputs {[t.name for t in ordered]} do not fit the model: {exc}"
        ) from None
    return [_as_tensor(spec, value) for spec, value in zip(wanted, values, strict=True)]


_KINDS: dict[type, str] = {}  # model class -> how to call it (run() is per request)


def _kind_of(model: Any) -> str:
    from serval.models.loaders import OnnxModel

    kind = "onnx" if isinstance(model, OnnxModel) else "torch" if _is_torch(model) else "sklearn"
    if len(_KINDS) < 1024:
        _KINDS[type(model)] = kind
    return kind


def _sklearn(model: Any, x: np.ndarray, output: str) -> Any:
    if output == "predict_proba":
        return model.predict_proba(x)
    return model.predict(x)


def _torch(model: Any, meta: ModelMetadata, inputs: list[Tensor], wanted: list[TensorSpec]) -> Any:
    import torch

    with torch.inference_mode():
        result = model(*[torch.from_numpy(np.array(t.data)) for t in inputs])
    results = list(result) if isinstance(result, tuple | list) else [result]
    by_name = {spec.name: r for spec, r in zip(meta.outputs, results, strict=False)}
    return [by_name[s.name].detach().cpu().numpy() for s in wanted]


def _as_tensor(spec: TensorSpec, value: Any) -> Tensor:
    arr = np.asarray(value)
    if spec.datatype == "BYTES":
        arr = np.array(
            [v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(-1)], dtype=object
        ).reshape(arr.shape)
    else:
        arr = arr.astype(DATATYPES[spec.datatype], copy=False)
    return Tensor(spec.name, spec.datatype, [int(d) for d in arr.shape], arr)
