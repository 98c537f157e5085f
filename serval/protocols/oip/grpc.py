"""OIP v2 over gRPC (``inference.GRPCInferenceService``), served by the proxy.

serval's proxy serves gRPC (``grpc_options``, :mod:`serval.proxy.grpc_ingress`): give it
this module's servicer function and each RPC goes to the application's ingress
deployment, to the method of the RPC's name, with the request message. An ingress
that mixes in :class:`OIPGrpcMethods` (the many-models ``Dispatcher`` does) answers
them through the same :class:`~serval.protocols.oip.frontend.OIPFrontend` as REST,
so routing (model-aware), store and metrics are shared::

    serval.start(grpc_options={
        "port": 8001,
        "grpc_servicer_functions": [
            "serval.protocols.oip.grpc:add_GRPCInferenceServiceServicer_to_server"],
    })

Error codes: unknown model or version NOT_FOUND, a tensor that does not fit or an
unknown output INVALID_ARGUMENT, a model that fails to load UNAVAILABLE, a message
over the proxy's limit RESOURCE_EXHAUSTED.

The generated modules (``grpc_predict_v2_pb2*.py``) come from ``grpc_predict_v2.proto``
(``make oip-proto``); they are imported only when a call arrives, so a process that
also uses ``tritonclient.grpc`` (whose messages share the ``inference`` package) does
not load both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serval.exceptions import BadRequestError
from serval.protocols.oip.binary import InferRequest
from serval.protocols.oip.errors import InvalidTensorError
from serval.protocols.oip.frontend import OIPFrontend
from serval.protocols.oip.tensors import (
    DATATYPES,
    Tensor,
    array_from_data,
    array_from_raw,
    raw_bytes,
)

__all__ = [
    "OIPGrpcMethods",
    "add_GRPCInferenceServiceServicer_to_server",
    "decode_inputs",
    "infer_response",
    "parse_infer_request",
]

# datatype -> the InferTensorContents field that carries it
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def add_GRPCInferenceServiceServicer_to_server(servicer: Any, server: Any) -> None:
    """The generated servicer function (what ``grpc_servicer_functions`` names)."""
    from serval.protocols.oip import grpc_predict_v2_pb2_grpc as pb_grpc

    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def _pb() -> Any:
    from serval.protocols.oip import grpc_predict_v2_pb2

    return grpc_predict_v2_pb2


def decode_inputs(request: Any) -> list[Tensor]:
    """The input tensors of a ``ModelInferRequest`` (raw contents or typed contents)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidTensorError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    out = []
    for i, item in enumerate(request.inputs):
        name, datatype, shape = item.name, item.datatype, [int(d) for d in item.shape]
        if datatype not in DATATYPES:
            raise InvalidTensorError(
                f"input {name!r}: unknown datatype {datatype!r}; one of {sorted(DATATYPES)}"
            )
        if raw:
            array = array_from_raw(name, datatype, shape, raw[i])
        else:
            field = _CONTENTS.get(datatype)
            if field is None:
                raise InvalidTensorError(f"input {name!r}: {datatype} must come as raw contents")
            values = getattr(item.contents, field)
            if datatype in ("BOOL", "BYTES"):
                array = array_from_data(name, datatype, shape, list(values))
            else:
                array = np.asarray(values, dtype=DATATYPES[datatype])
                count = int(np.prod(shape, dtype=np.int64))
                if array.size != count:
                    raise InvalidTensorError(
                        f"input {name!r}: shape {shape} needs {count} elements, "
                        f"contents has {array.size}"
                    )
                array = array.reshape(shape)
        out.append(Tensor(name, datatype, shape, array))
    return out


class OIPGrpcMethods:
    """Mixin for an ingress deployment: the RPCs of ``GRPCInferenceService``."""

    oip_frontend: OIPFrontend

    async def ServerLive(self, request: Any) -> Any:
        return _pb().ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any) -> Any:
        return _pb().ServerReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any) -> Any:
        return _pb().ServerMetadataResponse(**self.oip_frontend.server_metadata())

    async def ModelReady(self, request: Any) -> Any:
        await self.oip_frontend.model_ready(request.name, request.version or None)
        return _pb().ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request: Any) -> Any:
        meta = await self.oip_frontend.model_metadata(request.name, request.version or None)
        pb = _pb()
        spec = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[spec(**t) for t in meta["inputs"]],
            outputs=[spec(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any) -> Any:
        infer = InferRequest(
            decode_inputs(request),
            outputs=[o.name for o in request.outputs] or None,
            id=request.id,
        )
        name = request.model_name
        version, outputs = await self.oip_frontend.infer(name, request.model_version or None, infer)
        return infer_response(name, version, request.id, outputs)


def parse_infer_request(raw: bytes) -> Any:
    """A serialized ``ModelInferRequest``; ``BadRequestError`` when it is not one."""
    try:
        return _pb().ModelInferRequest.FromString(raw)
    except Exception as exc:  # google.protobuf.message.DecodeError
        raise BadRequestError(f"malformed ModelInferRequest: {exc}") from None


def infer_response(name: str, version: str, request_id: str, outputs: list[Tensor]) -> Any:
    """The ``ModelInferResponse`` for a model's output tensors (raw contents)."""
    pb = _pb()
    out = pb.ModelInferResponse.InferOutputTensor
    return pb.ModelInferResponse(
        model_name=name,
        model_version=version,
        id=request_id,
        outputs=[out(name=t.name, datatype=t.datatype, shape=t.shape) for t in outputs],
        raw_output_contents=[raw_bytes(t) for t in outputs],
    )
