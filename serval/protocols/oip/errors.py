"""The protocol's errors, as serval's exceptions (so HTTP statuses and gRPC codes follow
from :func:`serval.exceptions.http_status_for` and the gRPC ingress's mapping).

=============================  ======  ===================
what                           REST    gRPC
=============================  ======  ===================
unknown model or version       404     NOT_FOUND
bad tensor, unknown output     400     INVALID_ARGUMENT
model fails to load            500     UNAVAILABLE
body over the limit            413     RESOURCE_EXHAUSTED
=============================  ======  ===================
"""

from __future__ import annotations

from serval.exceptions import BadRequestError, ModelNotFoundError

__all__ = ["InvalidTensorError", "ModelNotFoundError", "UnknownOutputError"]


class InvalidTensorError(BadRequestError):
    """A tensor's name, shape, datatype or byte length does not fit; the message names
    the input and what was expected."""


class UnknownOutputError(BadRequestError):
    """A requested output the model does not produce; the message names it."""
