"""The access log and the one-line logging of client errors.

A replica writes one line per request it answered to the ``serval.access`` logger
(its log file), Ray Serve's access log with serval's fields::

    2026-12-03 07:01:02,345 INFO (replica shared#a1b2 pid=7) serval.access: POST /score 200 1.84ms
        request_id=4f0c…-1a application=many_models deployment=shared replica=shared#a1b2
        model_id=tenant7

(one line; handle calls log ``CALL <method>`` and ``OK``/``ERROR`` instead of a path and a
status code). ``logging_config={"enable_access_log": False}`` turns it off.

Errors that are the client's (an unknown route or model, a malformed body: HTTP 4xx) are
logged as one INFO line with long values cut, never with a traceback; errors of the
server or of user code keep their traceback.
"""

from __future__ import annotations

import logging
import time

from serval.exceptions import BackPressureError, http_status_for
from serval.observability import logs
from serval.observability.logs import ACCESS_LOGGER

MAX_VALUE_CHARS = 200

_access = logging.getLogger(ACCESS_LOGGER)


def cut(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` as text, at most about ``limit`` characters (says how much was cut)."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text) - limit} more chars)"


def is_client_error(exc: BaseException) -> bool:
    return http_status_for(exc) < 500


def log_failure(logger: logging.Logger, exc: BaseException, what: str) -> None:
    """A failed request: one short INFO line for a client error or an overload (503 +
    Retry-After: expected, not a bug), the traceback otherwise."""
    if is_client_error(exc) or isinstance(exc, BackPressureError):
        logger.info(
            "%s: %d %s: %s", what, http_status_for(exc), type(exc).__name__, cut(_message(exc))
        )
    else:
        logger.error("%s failed", what, exc_info=exc)


def _message(exc: BaseException) -> str:
    # KeyError subclasses (NotFoundError) repr their argument in str(); show it plainly.
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


class AccessLog:
    """One replica's access log; ``started`` values come from ``time.perf_counter()``."""

    __slots__ = ("application", "deployment", "replica")

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.application = ""
        self.deployment = ""

    def http(
        self, method: str, path: str, status: int, started: float, request_id: str, model_id: str
    ) -> None:
        if not _access.disabled:
            self._line(method, cut(path), status, started, request_id, model_id)

    def call(self, method: str, ok: bool, started: float, request_id: str, model_id: str) -> None:
        if not _access.disabled:
            self._line("CALL", method, "OK" if ok else "ERROR", started, request_id, model_id)

    def _line(
        self,
        method: str,
        path: str,
        status: int | str,
        started: float,
        request_id: str,
        model_id: str,
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000.0
        request = {
            "method": method,
            "path": path,
            "status_code": status,
            "latency_ms": round(latency_ms, 3),
        }
        fields = {
            "request_id": request_id,
            "application": self.application,
            "deployment": self.deployment,
            "replica": self.replica,
            "model_id": cut(model_id, 100),
        }
        message = f"{method} {path} {status} {latency_ms:.2f}ms"
        sink = logs.access_file
        if sink is not None:
            sink.write(message, request, fields)
        else:
            _access.info(message, extra={"serval_access": request, "serval_fields": fields})
