"""Tensors of the Open Inference Protocol v2, decoded into and encoded from numpy.

A :class:`Tensor` is a name, an OIP datatype, a shape and a numpy array of that shape.
JSON tensors carry ``data`` (flat or nested, row-major); raw tensors (the binary
extension, gRPC's ``raw_*_contents``) are the row-major little-endian bytes, and a
``BYTES`` element is a 4-byte little-endian length then its bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serval.protocols.oip.errors import InvalidTensorError

__all__ = [
    "DATATYPES",
    "Tensor",
    "array_from_data",
    "array_from_raw",
    "datatype_of",
    "raw_bytes",
    "tensor_from_json",
    "tensor_to_json",
]

#: OIP datatype -> numpy dtype (``BYTES`` elements are ``bytes`` in an object array).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_BY_KIND = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items() if name != "BYTES"}


@dataclass
class Tensor:
    """One named tensor; ``data`` has ``shape`` and the datatype's numpy dtype."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, array: Any) -> Tensor:
        """The tensor for a numpy array (or anything ``np.asarray`` takes)."""
        arr = np.asarray(array)
        datatype = datatype_of(arr)
        if datatype == "BYTES":
            arr = arr.astype(object)
        return cls(name, datatype, [int(d) for d in arr.shape], arr)


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of a numpy array (strings and bytes are ``BYTES``)."""
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    name = _BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if name is None:
        raise TypeError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")
    return name


def _count(name: str, shape: list[int]) -> int:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidTensorError(
            f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}"
        )
    return math.prod(shape)


def _check_datatype(name: str, datatype: Any) -> np.dtype[Any]:
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidTensorError(
            f"input {name!r}: unknown datatype {datatype!r}; one of {sorted(DATATYPES)}"
        )
    return dtype


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return data


def array_from_data(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """A JSON tensor's ``data`` (flat or nested) as an array of ``shape``."""
    dtype = _check_datatype(name, datatype)
    count = _count(name, shape)
    flat = _flatten(data)
    if len(flat) != count:
        raise InvalidTensorError(
            f"input {name!r}: shape {shape} needs {count} elements, 'data' has {len(flat)}"
        )
    if datatype == "BYTES":
        if not all(isinstance(v, str | bytes) for v in flat):
            raise InvalidTensorError(f"input {name!r}: BYTES data must be strings")
        arr = np.empty(count, dtype=object)
        arr[:] = [v.encode() if isinstance(v, str) else v for v in flat]
        return arr.reshape(shape)
    try:
        parsed = np.asarray(flat)  # one vectorised pass; its kind says what the JSON held
    except ValueError as exc:
        raise InvalidTensorError(f"input {name!r}: 'data' is not a flat list: {exc}") from None
    allowed = "b" if datatype == "BOOL" else ("iu" if dtype.kind in "iu" else "iuf")
    if parsed.size and parsed.dtype.kind not in allowed:
        raise InvalidTensorError(
            f"input {name!r}: 'data' does not hold {datatype} values "
            f"(got {_first_misfit(flat, allowed)!r})"
        )
    try:
        return parsed.astype(dtype, copy=False).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise InvalidTensorError(f"input {name!r}: 'data' does not fit {datatype}: {exc}") from None


def _first_misfit(flat: list[Any], allowed: str) -> Any:
    """The first JSON value of ``flat`` that is not of the ``allowed`` numpy kinds."""
    kinds = {"b": (bool,), "iu": (int,), "iuf": (int, float)}[allowed]
    for v in flat:
        if not isinstance(v, kinds) or (allowed != "b" and isinstance(v, bool)):
            return v
    return flat[0]


def array_from_raw(
    name: str, datatype: str, shape: list[int], raw: bytes | memoryview
) -> np.ndarray:
    """Raw (binary) tensor bytes as an array of ``shape``; the byte length must match."""
    dtype = _check_datatype(name, datatype)
    count = _count(name, shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        view = memoryview(raw)
        pos = 0
        while pos < len(view):
            if pos + 4 > len(view):
                raise InvalidTensorError(f"input {name!r}: BYTES element length is truncated")
            (size,) = struct.unpack_from("<I", view, pos)
            pos += 4
            if pos + size > len(view):
                raise InvalidTensorError(
                    f"input {name!r}: BYTES element of {size} bytes runs past the tensor's data"
                )
            items.append(bytes(view[pos : pos + size]))
            pos += size
        if len(items) != count:
            raise InvalidTensorError(
                f"input {name!r}: shape {shape} needs {count} BYTES elements, got {len(items)}"
            )
        arr = np.empty(count, dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidTensorError(
            f"input {name!r}: {datatype} of shape {shape} is {expected} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def raw_bytes(tensor: Tensor) -> bytes:
    """The tensor's raw (binary extension) bytes."""
    if tensor.datatype == "BYTES":
        parts: list[bytes] = []
        for item in tensor.data.reshape(-1):
            b = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(tensor.data, dtype=DATATYPES[tensor.datatype]).tobytes()


def tensor_from_json(obj: Any, raw: bytes | memoryview | None = None) -> Tensor:
    """An input tensor of a JSON request; ``raw`` its bytes when it came binary."""
    if not isinstance(obj, dict):
        raise InvalidTensorError(f"each of 'inputs' must be an object, got {obj!r}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidTensorError("each input needs a 'name' (a non-empty string)")
    datatype = obj.get("datatype")
    shape = obj.get("shape")
    parameters = obj.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidTensorError(f"input {name!r}: 'parameters' must be an object")
    if raw is not None:
        array = array_from_raw(name, datatype, shape, raw)  # type: ignore[arg-type]
    elif "data" not in obj:
        raise InvalidTensorError(f"input {name!r} has no 'data' (nor binary_data_size)")
    else:
        array = array_from_data(name, datatype, shape, obj["data"])  # type: ignore[arg-type]
    return Tensor(name, str(datatype), list(shape), array, dict(parameters))  # type: ignore[arg-type]


def tensor_to_json(tensor: Tensor) -> dict[str, Any]:
    """An output tensor for a JSON response (``data`` flat, row-major)."""
    if tensor.datatype == "BYTES":
        data: list[Any] = [
            v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            for v in tensor.data.reshape(-1)
        ]
    else:
        data = tensor.data.reshape(-1).tolist()
    out: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": tensor.shape,
        "data": data,
    }
    if tensor.parameters:
        out["parameters"] = tensor.parameters
    return out
