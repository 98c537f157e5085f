"""OIP v2 infer calls routed by the proxy itself, straight to the model's replica.

A many-models ingress (:mod:`serval.apps.many_models`) publishes its routing table
(:class:`~serval.transport.messages.ModelRoutes`: model name → pool → deployment, and
per-model canaries) with its route. For ``POST {prefix}/v2/models/{name}[/versions/
{v}]/infer`` the proxy then resolves the pool and the model id with the same
:class:`~serval.models.pool_routing.PoolRouting` the ingress uses and calls the pool's
``oip_infer_rest`` with the body as it came (bytes in, bytes out), model-aware: one
process hop instead of two, and the ingress' CPU left to everything else. Every other
request, and every request of a route with a traffic split, goes to the ingress.

gRPC ``ModelInfer`` calls take the same way when the table names a ``grpc_method``
(:meth:`DirectInfer.grpc_infer`, called by :mod:`serval.proxy.grpc_ingress`): the
serialized request to the replica, the serialized response back.

Answers are the ingress' answers: the same body and ``Inference-Header-Content-Length``
header, the same ``{"error": ...}`` bodies and status codes (404 naming an unknown
model or version, 400 for a tensor that does not fit, 503 + Retry-After, 504), one
log line per client error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from serval._process import ProcessContext
from serval.exceptions import (
    ModelNotFoundError,
    RequestTimeoutError,
    ServalError,
    http_status_for,
    public_message,
    retry_headers,
)
from serval.models.pool_routing import PoolRouting
from serval.observability import tracing
from serval.observability.logs_access import log_failure
from serval.transport.codec import dumps, error_from_reply, loads
from serval.transport.messages import Call, CallResult, ErrorReply, ModelRoutes, RouteInfo

__all__ = ["DirectInfer", "infer_target"]

logger = logging.getLogger("serval.proxy")

Send = Callable[[dict[str, Any]], Awaitable[None]]

# The binary tensor extension's header (serval.protocols.oip.binary.HEADER; not imported:
# that package brings numpy into the proxy).
_BINARY_HEADER = b"inference-header-content-length"
_JSON = (b"content-type", b"application/json")
_OCTETS = (b"content-type", b"application/octet-stream")
_ERROR_JSON = msgspec.json.Encoder()


def infer_target(path: str, prefix: str) -> tuple[str, str | None] | None:
    """``(name, version)`` when ``path`` is an OIP infer call under ``prefix``."""
    rest = path if prefix == "/" else path[len(prefix) :]
    if not rest.startswith("/v2/models/") or not rest.endswith("/infer"):
        return None
    parts = rest[len("/v2/models/") : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return parts[0], parts[2]
    return None


class DirectInfer:
    """The proxy's side of :class:`~serval.transport.messages.ModelRoutes`."""

    def __init__(self, ctx: ProcessContext, timeout_s: float | None) -> None:
        self.ctx = ctx
        self._timeout = timeout_s
        self._routing: dict[str, tuple[ModelRoutes, PoolRouting]] = {}  # app -> its table

    def _table(self, app: str, routes: ModelRoutes) -> PoolRouting:
        cached = self._routing.get(app)
        if cached is None or cached[0] is not routes:
            pools = [p for p in routes.deployments if p != routes.default]
            routing = PoolRouting(routes.mapping, routes.canaries, pools, routes.default)
            self._routing[app] = cached = (routes, routing)
        return cached[1]

    async def __call__(
        self,
        route: RouteInfo,
        target: tuple[str, str | None],
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        request_id: str,
        send: Send,
    ) -> int:
        """Answer one infer call; returns the status code sent."""
        routes = route.models
        assert routes is not None
        name, version = target
        header_length = None
        for key, value in headers:
            if key == _BINARY_HEADER:
                header_length = value.decode("latin-1")
                break
        try:
            deployment, model_id = self.resolve(route, name, version)
            args = (body, header_length, name)
            where = (route.app, deployment, routes.method, model_id, request_id, args)
            if tracing.enabled():
                with tracing.span(
                    f"POST {route.prefix}",
                    tracing.header_value(headers),
                    **{"serval.application": route.app, "serval.request_id": request_id},
                ):
                    answer = await self._call(
                        *where, tracing.traceparent(), timeout_s=self._timeout
                    )
            else:
                answer = await self._call(*where, timeout_s=self._timeout)
        except ServalError as exc:
            return await _error(send, exc, f"POST {route.prefix} {name} ({request_id})", request_id)
        out, binary_length = answer  # (bytes, int | None): oip_infer_rest's answer
        if binary_length is None:
            head = [_JSON]
        else:
            head = [_OCTETS, (_BINARY_HEADER, str(binary_length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": out})
        return 200

    def resolve(self, route: RouteInfo, name: str, version: str | None) -> tuple[str, str]:
        """``(deployment, model id)`` that serve ``name`` (at ``version``), as the
        ingress would pick them; ``ModelNotFoundError`` for what cannot be a model."""
        routes = route.models
        assert routes is not None
        if not name or "@" in name:
            raise ModelNotFoundError(f"model {name!r} not found: not a model name")
        routing = self._table(route.app, routes)
        model_id = f"{name}@{version}" if version else routing.model_id_of(name)
        return routes.deployments[routing.pool_of(name)], model_id

    async def grpc_infer(
        self, route: RouteInfo, deployment: str, model_id: str, raw: bytes, request_id: str
    ) -> bytes:
        """A gRPC ``ModelInfer`` call (its serialized request) answered by the model's
        replica (``ModelRoutes.grpc_method``): the serialized ``ModelInferResponse``.
        No deadline here: the gRPC ingress applies ``grpc_options``' own."""
        routes = route.models
        assert routes is not None and routes.grpc_method
        result: bytes = await self._call(
            route.app, deployment, routes.grpc_method, model_id, request_id, (raw,), timeout_s=None
        )
        return result

    async def _call(
        self,
        app: str,
        deployment: str,
        method: str,
        model_id: str,
        request_id: str,
        args: tuple[Any, ...],
        trace: str = "",
        *,
        timeout_s: float | None,
    ) -> Any:
        """``method``'s answer, within ``timeout_s`` (None: no deadline here)."""
        msg = Call(method, dumps((args, {})), model_id, False, request_id, trace)
        router = self.ctx.router(app, deployment)
        limit = timeout_s
        if limit is None:
            assignment = await router.assign(msg)
        else:
            try:
                assignment = await asyncio.wait_for(router.assign(msg), limit)
            except asyncio.TimeoutError:
                raise RequestTimeoutError(
                    f"request {request_id} timed out after {limit}s (request_timeout_s)"
                ) from None
        first = assignment.first
        if type(first) is CallResult:
            return loads(first.payload)
        if isinstance(first, ErrorReply):
            raise error_from_reply(first)
        assignment.close()
        raise ServalError(f"unexpected reply {type(first).__name__} to an infer call")


async def _error(send: Send, exc: ServalError, what: str, request_id: str) -> int:
    """The OIP ``{"error": ...}`` answer, as the ingress gives it."""
    log_failure(logger, exc, what)
    status = http_status_for(exc)
    head = [_JSON, (b"x-request-id", request_id.encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (retry_headers(exc) or {}).items()]
    body = _ERROR_JSON.encode({"error": public_message(exc, request_id)})
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
    return status
