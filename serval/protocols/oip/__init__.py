"""The Open Inference Protocol v2 (KServe, Triton, MLServer) on serval's model store.

REST (:class:`OIPRest`) in any ingress, gRPC (``inference.GRPCInferenceService``,
:mod:`serval.protocols.oip.grpc`) through the proxy's gRPC port; both route through
:class:`OIPFrontend` to a deployment that mixes in :class:`OIPModels`, with the model
id as ``multiplexed_model_id``. The many-models app (:mod:`serval.apps.many_models`)
serves both. See the README ("Open Inference Protocol") for a ``tritonclient`` example.
"""

from __future__ import annotations

from serval.protocols.oip.binary import InferRequest
from serval.protocols.oip.errors import InvalidTensorError, UnknownOutputError
from serval.protocols.oip.frontend import OIPFrontend
from serval.protocols.oip.metadata import METADATA_FILE, ModelMetadata, TensorSpec, metadata_of
from serval.protocols.oip.rest import OIPRest
from serval.protocols.oip.serving import OIPModels
from serval.protocols.oip.tensors import Tensor

__all__ = [
    "METADATA_FILE",
    "InferRequest",
    "InvalidTensorError",
    "ModelMetadata",
    "OIPFrontend",
    "OIPModels",
    "OIPRest",
    "Tensor",
    "TensorSpec",
    "UnknownOutputError",
    "metadata_of",
]
