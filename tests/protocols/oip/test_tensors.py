"""Unit tests of the tensor codec and the binary extension (no processes)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from serval.exceptions import BadRequestError
from serval.protocols.oip.binary import encode_response, parse_request
from serval.protocols.oip.errors import InvalidTensorError
from serval.protocols.oip.metadata import TensorSpec, parse_metadata
from serval.protocols.oip.tensors import (
    Tensor,
    array_from_data,
    array_from_raw,
    raw_bytes,
    tensor_from_json,
    tensor_to_json,
)

CASES = [
    ("FP32", np.arange(6, dtype=np.float32).reshape(2, 3) / 3),
    ("FP64", np.arange(6, dtype=np.float64).reshape(3, 2) / 7),
    ("INT32", np.array([[-1, 2], [3, 2**31 - 1]], dtype=np.int32)),
    ("INT64", np.array([2**40, -5], dtype=np.int64)),
    ("BOOL", np.array([[True, False, True]])),
]


@pytest.mark.parametrize(("datatype", "array"), CASES, ids=[c[0] for c in CASES])
def test_json_and_raw_round_trips(datatype: str, array: np.ndarray) -> None:
    tensor = Tensor.of("t", array)
    assert tensor.datatype == datatype
    back = tensor_from_json(json.loads(json.dumps(tensor_to_json(tensor))))
    np.testing.assert_array_equal(back.data, array)
    assert back.data.dtype == array.dtype and back.shape == list(array.shape)
    raw = array_from_raw("t", datatype, list(array.shape), raw_bytes(tensor))
    np.testing.assert_array_equal(raw, array)


def test_bytes_tensors() -> None:
    array = np.array([b"a", b"", "héllo".encode()], dtype=object)
    tensor = Tensor("s", "BYTES", [3], array)
    raw = raw_bytes(tensor)
    assert raw[:5] == struct.pack("<I", 1) + b"a"
    np.testing.assert_array_equal(array_from_raw("s", "BYTES", [3], raw), array)
    assert tensor_to_json(tensor)["data"] == ["a", "", "héllo"]
    np.testing.assert_array_equal(array_from_data("s", "BYTES", [3], ["a", "", "héllo"]), array)
    with pytest.raises(InvalidTensorError, match="runs past"):
        array_from_raw("s", "BYTES", [3], raw[:-1])


def test_nested_data_and_mismatches_name_the_input() -> None:
    np.testing.assert_array_equal(
        array_from_data("x", "INT64", [2, 2], [[1, 2], [3, 4]]), [[1, 2], [3, 4]]
    )
    with pytest.raises(InvalidTensorError, match="'x': shape \\[2, 2\\] needs 4 elements"):
        array_from_data("x", "FP32", [2, 2], [1, 2, 3])
    with pytest.raises(InvalidTensorError, match="'x': FP32 of shape \\[2\\] is 8 bytes, got 7"):
        array_from_raw("x", "FP32", [2], b"\0" * 7)
    with pytest.raises(InvalidTensorError, match="'x': unknown datatype 'FP8'"):
        array_from_data("x", "FP8", [1], [1])
    with pytest.raises(InvalidTensorError, match="'x': 'data' does not hold INT32"):
        array_from_data("x", "INT32", [1], [1.5])
    with pytest.raises(InvalidTensorError, match="'x': 'data' does not hold BOOL"):
        array_from_data("x", "BOOL", [1], [1])
    with pytest.raises(InvalidTensorError, match="non-negative"):
        array_from_data("x", "FP32", [-1], [])


def test_spec_checks() -> None:
    spec = TensorSpec("x", "FP32", (-1, 4))
    spec.check(Tensor.of("x", np.zeros((7, 4), np.float32)))
    with pytest.raises(InvalidTensorError, match="'x': expected shape \\[-1, 4\\], got \\[7, 3\\]"):
        spec.check(Tensor.of("x", np.zeros((7, 3), np.float32)))
    with pytest.raises(InvalidTensorError, match="'x': expected datatype FP32, got FP64"):
        spec.check(Tensor.of("x", np.zeros((7, 4))))
    meta = parse_metadata(
        '{"inputs": [{"name": "a", "datatype": "INT64", "shape": [3]}],'
        ' "outputs": [{"name": "b", "datatype": "BYTES"}]}'
    )
    assert meta.inputs[0].shape == (3,) and meta.outputs[0].shape is None
    with pytest.raises(ValueError, match="unknown datatype"):
        parse_metadata('{"inputs": [{"name": "a", "datatype": "X"}], "outputs": []}')


def test_binary_request_and_response() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    head = json.dumps(
        {
            "id": "7",
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": 32},
                },
                {"name": "k", "datatype": "INT32", "shape": [1], "data": [3]},
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "z"}],
        }
    ).encode()
    request = parse_request(head + x.tobytes(), str(len(head)))
    np.testing.assert_array_equal(request.inputs[0].data, x)
    assert request.inputs[1].data.tolist() == [3]
    assert request.outputs == ["y", "z"] and request.binary_outputs == {"y"}
    y, z = Tensor.of("y", x * 2), Tensor.of("z", np.array([1, 2], dtype=np.int64))
    body, size = encode_response(request, "m", "1", [y, z])
    assert size is not None
    answer = json.loads(body[:size])
    assert answer["id"] == "7" and answer["outputs"][0]["parameters"] == {"binary_data_size": 32}
    assert answer["outputs"][1]["data"] == [1, 2]
    np.testing.assert_array_equal(np.frombuffer(body[size:], np.float32).reshape(2, 4), x * 2)
    with pytest.raises(InvalidTensorError, match="carries 33 binary bytes"):
        parse_request(head + x.tobytes() + b"!", str(len(head)))
    with pytest.raises(BadRequestError, match="is 9999, but the body has"):
        parse_request(head, "9999")
    with pytest.raises(BadRequestError, match=r"invalid infer request: .* at `\$.inputs`"):
        parse_request(b'{"inputs": []}', None)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, -1], "data": [1]}]}',
            "`$.inputs[0].shape[1]`",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1],'
            b' "parameters": "p"}]}',
            "`$.inputs[0].parameters`",
        ),
        (b'{"inputs": [{"datatype": "FP64", "shape": [1], "data": [1]}]}', "`$.inputs[0]`"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}], "id": 7}',
            "`$.id`",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}],'
            b' "outputs": [{"name": "y", "parameters": [1]}]}',
            "`$.outputs[0].parameters`",
        ),
        (b"[1, 2]", "Expected `object`, got `array`"),
    ],
)
def test_a_malformed_request_names_the_field(body: bytes, where: str) -> None:
    with pytest.raises(BadRequestError, match="invalid infer request: ") as info:
        parse_request(body, None)
    assert where in str(info.value)


def test_repeated_names_and_missing_data() -> None:
    x = b'{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}'
    with pytest.raises(InvalidTensorError, match="input 'x' is given more than once"):
        parse_request(b'{"inputs": [' + x + b", " + x + b"]}", None)
    outputs = b', "outputs": [{"name": "y"}, {"name": "y"}]}'
    with pytest.raises(InvalidTensorError, match="output 'y' is given more than once"):
        parse_request(b'{"inputs": [' + x + b"]" + outputs, None)
    with pytest.raises(InvalidTensorError, match="input 'x' has no 'data'"):
        parse_request(b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1]}]}', None)
    with pytest.raises(BadRequestError, match="malformed JSON"):
        parse_request(b"{not json", None)
