"""Python values and exceptions in and out of message payloads.

Values go through cloudpickle on the way out (so lambdas and classes defined in
``__main__`` travel) and plain ``pickle`` on the way in. Exceptions become an
``ErrorReply`` whose ``kind`` names the serval exception to raise on the other side.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import cloudpickle

from serval import exceptions as exc_mod
from serval.transport.messages import ErrorReply


def dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return cloudpickle.dumps(value, protocol=5)  # type: ignore[no-any-return]


def loads(data: bytes) -> Any:
    return pickle.loads(data)


_KIND_OF: list[tuple[type[BaseException], str]] = [
    (exc_mod.BackPressureError, "backpressure"),
    (exc_mod.ModelNotFoundError, "model_not_found"),
    (exc_mod.NotFoundError, "not_found"),
    (exc_mod.ModelLoadError, "model_load"),
    (exc_mod.BadRequestError, "bad_request"),
    (exc_mod.RequestTimeoutError, "timeout"),
    (exc_mod.RequestCancelledError, "cancelled"),
    (exc_mod.ReplicaUnavailableError, "unavailable"),
]


def error_reply(exc: BaseException, *, user: bool = True) -> ErrorReply:
    """Pack ``exc`` for the caller. ``user=True`` keeps the traceback and the object."""
    kind = "user" if user else "internal"
    for cls, name in _KIND_OF:
        if isinstance(exc, cls):
            kind = name
            break
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        payload = cloudpickle.dumps(exc)
        pickle.loads(payload)  # it must also come back out on the other side
    except Exception:
        payload = b""
    type_name, message = type(exc).__name__, str(exc)
    if isinstance(exc, exc_mod.ReplicaError):
        # A failure from a handle call further down, passed on: the caller sees its cause
        # (type and message; its str() would carry the remote traceback to the client).
        type_name, message = exc.cause_type, exc.message
    return ErrorReply(
        kind=kind, type_name=type_name, message=message, traceback=tb, payload=payload
    )


def error_from_reply(reply: ErrorReply) -> exc_mod.ServalError:
    """The serval exception a caller should see for ``reply``."""
    original: BaseException | None = None
    if reply.payload:
        try:
            original = pickle.loads(reply.payload)
        except Exception:
            original = None
    if reply.kind == "user" or reply.kind == "internal":
        return exc_mod.ReplicaError(reply.message, reply.type_name, reply.traceback, original)
    if isinstance(original, exc_mod.ServalError):
        return original
    simple: dict[str, type[exc_mod.ServalError]] = {
        "not_found": exc_mod.NotFoundError,
        "model_not_found": exc_mod.ModelNotFoundError,
        "bad_request": exc_mod.BadRequestError,
        "timeout": exc_mod.RequestTimeoutError,
        "cancelled": exc_mod.RequestCancelledError,
        "unavailable": exc_mod.ReplicaUnavailableError,
        "backpressure": exc_mod.BackPressureError,
        "controller": exc_mod.ControllerError,
        "config": exc_mod.ConfigError,
        "deploy_failed": exc_mod.DeploymentFailedError,
    }
    if reply.kind == "model_load":
        return exc_mod.ModelLoadError("?", reply.message)
    return simple.get(reply.kind, exc_mod.ServalError)(reply.message)
