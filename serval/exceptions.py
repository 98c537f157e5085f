"""serval's exceptions: one tree, one root, one place that maps them to HTTP.

::

    ServalError (alias: RayServeException, the root Ray Serve users catch)
    ├── ConfigError (ValueError)          invalid option or config file; names the option
    ├── DeploymentUnavailableError        a deployment cannot take requests (Ray Serve's name)
    │   └── DeploymentFailedError         it could not start (constructor raised ...)
    ├── NotFoundError (KeyError)          unknown application, deployment, route or model
    │   └── ModelNotFoundError            unknown model id (HTTP 404)
    ├── ModelLoadError                    a model failed to load: names the model and the cause
    ├── BackPressureError                 queue full (HTTP 503, or 429, + Retry-After)
    ├── RequestTimeoutError (TimeoutError) request took longer than request_timeout_s (HTTP 408)
    ├── RequestCancelledError             the caller went away
    ├── ReplicaUnavailableError           the replica died or could not be reached
    ├── ReplicaError                      user code raised; carries the remote traceback (HTTP 500)
    ├── BatchResultError                  a @batch function did not return one result per input
    ├── ControllerError                   the controller could not be reached or refused a call
    └── BadRequestError (ValueError)      the request itself is malformed (HTTP 400)

Errors raised by other libraries are translated where they enter serval
(``raise ServalError(...) from exc``); :func:`http_status_for` is the only place
that knows status codes.
"""

from __future__ import annotations

__all__ = [
    "BackPressureError",
    "BadRequestError",
    "BatchResultError",
    "ConfigError",
    "ControllerError",
    "DeploymentFailedError",
    "DeploymentUnavailableError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotFoundError",
    "RayServeException",
    "ReplicaError",
    "ReplicaUnavailableError",
    "RequestCancelledError",
    "RequestTimeoutError",
    "ServalError",
    "http_status_for",
]


class ServalError(Exception):
    """Root of every error serval raises on purpose."""


RayServeException = ServalError  # Ray Serve's name for the root: `except RayServeException`


class ConfigError(ServalError, ValueError):
    """An option or config value is invalid; the message names it and what is allowed."""


class DeploymentUnavailableError(ServalError):
    """A deployment cannot take requests (Ray Serve's name; today: it failed to deploy)."""


class DeploymentFailedError(DeploymentUnavailableError):
    """A deployment could not reach a running state (for example its constructor raised)."""


class NotFoundError(ServalError, KeyError):
    """Something named does not exist: an application, a deployment, a route."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(NotFoundError):
    """The model id is not in the registry."""


class ModelLoadError(ServalError):
    """A model failed to load. ``model_id`` and ``cause`` say which and why."""

    def __init__(self, model_id: str, cause: str) -> None:
        super().__init__(f"model {model_id!r} failed to load: {cause}")
        self.model_id = model_id
        self.cause = cause

    def __reduce__(self) -> tuple[type[ModelLoadError], tuple[str, str]]:
        return (type(self), (self.model_id, self.cause))


class BackPressureError(ServalError):
    """Every replica is busy and the queue is full; retry after ``retry_after_s``.

    ``status_code`` is what HTTP callers get: 503, or 429 when the deployment's
    ``backpressure_config`` asks for it."""

    def __init__(self, message: str, retry_after_s: float = 1.0, status_code: int = 503) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status_code = status_code

    def __reduce__(self) -> tuple[type[BackPressureError], tuple[str, float, int]]:
        return (type(self), (str(self), self.retry_after_s, self.status_code))


class RequestTimeoutError(ServalError, TimeoutError):
    """The request was not answered within its timeout."""


class RequestCancelledError(ServalError):
    """The request was cancelled before it finished."""


class ReplicaUnavailableError(ServalError):
    """The chosen replica could not be reached or died while serving."""


class ReplicaError(ServalError):
    """User code raised inside a replica.

    ``cause_type`` is the name of the original exception type, ``remote_traceback``
    the traceback as formatted in the replica, and ``cause`` the original exception
    when it could be carried across processes.
    """

    def __init__(
        self,
        message: str,
        cause_type: str = "Exception",
        remote_traceback: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause_type = cause_type
        self.remote_traceback = remote_traceback
        self.cause = cause

    def __str__(self) -> str:
        if self.remote_traceback:
            return (
                f"{self.cause_type}: {self.message}\n\nRemote traceback:\n{self.remote_traceback}"
            )
        return f"{self.cause_type}: {self.message}"

    def __reduce__(self) -> tuple[type[ReplicaError], tuple[str, str, str, BaseException | None]]:
        return (type(self), (self.message, self.cause_type, self.remote_traceback, self.cause))


class BatchResultError(ServalError):
    """A ``@serval.batch`` function returned a non-list or the wrong number of results.

    Every caller of that batch gets it; the message says how many results were expected.
    """


class ControllerError(ServalError):
    """The controller could not be reached, or refused a request."""


class BadRequestError(ServalError, ValueError):
    """The request is malformed; the message says what was wrong."""


def http_status_for(exc: BaseException) -> int:
    """The HTTP status code an exception maps to (500 for anything unknown)."""
    if isinstance(exc, BadRequestError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, RequestTimeoutError):
        return 408
    if isinstance(exc, BackPressureError):
        return exc.status_code
    if isinstance(exc, ReplicaUnavailableError):
        return 503
    return 500


def public_message(exc: BaseException, request_id: str = "") -> str:
    """What a client is told about ``exc``: its message, or for an error of user code
    in a replica its type and message without the remote traceback (that stays in the
    replica's log), cut to 300 characters, with the request id to find it there."""
    if not isinstance(exc, ReplicaError):
        return str(exc)
    message = exc.message if len(exc.message) <= 300 else exc.message[:300] + "..."
    where = f" (request id {request_id})" if request_id else ""
    return f"Internal Server Error: {exc.cause_type}: {message}{where}"


def retry_headers(exc: BaseException) -> dict[str, str]:
    """``{"Retry-After": seconds}`` for an overload (503/429), else nothing."""
    if isinstance(exc, BackPressureError):
        return {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    return {}
