"""The proxy's ASGI application: route by prefix, forward over the framed protocol.

Plain ASGI on purpose — no framework on the hot path. Per request it reads the
body (413 past ``max_request_body_bytes``), finds the route (404 naming the path),
builds one ``HttpRequest`` frame, lets the deployment's router place it, and relays
the reply: one ``HttpResponse`` frame, or a head and streamed chunks. Failures map
to status codes through :func:`serval.exceptions.http_status_for`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serval._env import read_env
from serval._process import ProcessContext
from serval.config import HTTPOptions
from serval.context import MODEL_ID_HEADER
from serval.exceptions import (
    BackPressureError,
    RequestTimeoutError,
    ServalError,
    http_status_for,
    public_message,
)
from serval.observability import tracing
from serval.observability.dashboard import Dashboard
from serval.observability.families import UNMATCHED_ROUTE
from serval.observability.http import HttpMetrics
from serval.observability.ingress import GrpcMetrics, WebSocketMetrics
from serval.observability.logs_access import cut
from serval.observability.process import enabled as metrics_enabled
from serval.observability.scrape import metrics_text
from serval.proxy.admin import BearerAuth, build_admin_app
from serval.proxy.disconnect import cancel_on_disconnect
from serval.proxy.model_routes import DirectInfer, infer_target
from serval.proxy.routes import RouteTable
from serval.proxy.split import TrafficSplit
from serval.proxy.websocket import connect_message, forward_measured
from serval.transport.busy_poll import BusyPoll
from serval.transport.codec import error_from_reply
from serval.transport.messages import (
    BodyChunk,
    ErrorReply,
    HttpRequest,
    HttpResponse,
    HttpResponseStart,
    RouteInfo,
    RoutesApplied,
    StreamEnd,
    Update,
)

logger = logging.getLogger("serval.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MODEL_ID = MODEL_ID_HEADER.encode()
_REQUEST_ID = b"x-request-id"
_TEXT = (b"content-type", b"text/plain; charset=utf-8")
_JSON = (b"content-type", b"application/json")
_METRICS = (b"content-type", CONTENT_TYPE_LATEST.encode())


class _TooLarge(Exception):
    pass


class ProxyApp:
    def __init__(self, ctx: ProcessContext, options: HTTPOptions, name: str = "proxy") -> None:
        self.ctx = ctx
        self.name = name
        self._acks: set[asyncio.Task[Any]] = set()
        self.split = TrafficSplit(ctx)
        token = options.admin_token or read_env().admin_token
        self.admin = build_admin_app(ctx, token) if token else None
        self.dashboard = Dashboard(ctx, token)
        self.options = options
        self.routes = RouteTable()
        # Request ids: this proxy's random prefix and a counter (uuid4 per request costs
        # a system call for randomness on the hot path).
        self._id_prefix = uuid.uuid4().hex[:12] + "-"
        self._ids = itertools.count(1)
        self.has_routes = asyncio.Event()  # set by the first route table from the controller
        self._timeout = options.request_timeout_s
        self._max_body = options.max_request_body_bytes
        self.direct = DirectInfer(ctx, options.request_timeout_s)
        self.in_flight = 0  # HTTP requests to routes being answered now
        self.total = 0  # and received so far
        # At most one request in flight: awake for the replica's answer and the client's
        # next request, for a moment (serval/transport/busy_poll.py).
        self.busy_poll = BusyPoll(self, read_env().busy_poll_us / 1e6, max_in_flight=1)
        self.http_metrics = HttpMetrics() if metrics_enabled() else None
        self.ws_metrics = WebSocketMetrics() if metrics_enabled() else None
        self.grpc_metrics = GrpcMetrics() if metrics_enabled() else None  # the gRPC ingress'
        # With an admin token the scrape needs it too (model ids are tenant names);
        # Prometheus sends it with `authorization: {credentials: ...}`.
        self._metrics: Any = self._scrape
        if token:
            self._metrics = BearerAuth(self._scrape, token)

    def on_routes(self, update: Update) -> None:
        if update.routes is not None:
            self.routes.update(update.routes)
            self.has_routes.set()
            task = asyncio.get_running_loop().create_task(
                self.ctx.controller.call(RoutesApplied(self.name, update.version), timeout_s=10)
            )
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/-/"):
            if path.startswith("/-/admin/") and self.admin is not None:
                await self.admin(scope, receive, send)
            elif path.startswith("/-/dashboard"):
                await self.dashboard(scope, receive, send)
            elif path == "/-/metrics":
                await self._metrics(scope, receive, send)
            else:
                await self._admin(path, send)
            return
        self.in_flight += 1
        self.total += 1
        self.busy_poll.arm()
        try:
            await self._route(path, scope, receive, send)
        finally:
            self.in_flight -= 1
            self.busy_poll.arm()

    async def _route(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A request to an application's route (or to none: 404), with its metrics."""
        route = self.routes.match(path)
        metrics = self.http_metrics
        if metrics is None:
            await self._serve(route, path, scope, receive, send)
            return
        started = time.perf_counter()
        status = await self._serve(route, path, scope, receive, send)
        elapsed = time.perf_counter() - started
        if route is None:
            metrics.observe("", "", UNMATCHED_ROUTE, scope["method"], status, elapsed)
        else:
            metrics.observe(
                route.app, route.deployment, route.prefix, scope["method"], status, elapsed
            )

    async def _serve(
        self, route: RouteInfo | None, path: str, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """Answer one request to a route; returns the status code sent."""
        if route is None:
            logger.info("404 %s %s: no route", scope["method"], cut(path))
            await _plain(
                send,
                404,
                f"Path '{path}' not found. Routes: "
                f"{[r.prefix for r in self.routes.routes]} (see /-/routes)",
            )
            return 404
        try:
            body = await self._read_body(scope, receive)
        except _TooLarge:
            await _plain(
                send,
                413,
                f"Request body is larger than the limit of "
                f"{self._max_body} bytes (max_request_body_bytes)",
            )
            return 413
        model_id, request_id = self._header_ids(scope)
        if route.models is not None and route.canary is None and scope["method"] == "POST":
            target = infer_target(path, route.prefix)
            if target is not None:  # an OIP infer call: straight to the model's replica
                return await cancel_on_disconnect(
                    lambda tracked: self.direct(
                        route, target, body, scope["headers"], request_id, tracked
                    ),
                    receive,
                    send,
                    request_id,
                )
        client = scope.get("client") or ("", 0)
        prefix = route.prefix
        request = HttpRequest(
            scope["method"],
            path,
            scope["query_string"],
            scope["headers"],
            body,
            "" if prefix == "/" else prefix,
            scope.get("scheme", "http"),
            scope.get("http_version", "1.1"),
            client[0],
            client[1],
            request_id,
            model_id,
        )
        forward = self._traced if tracing.enabled() else self._dispatch
        return await cancel_on_disconnect(
            lambda tracked: forward(route, request, scope, tracked),
            receive,
            send,
            request_id,
        )

    async def _traced(self, route: Any, request: HttpRequest, scope: Scope, send: Send) -> int:
        """The request inside a span; the replica continues it (traceparent header)."""
        with tracing.span(
            f"{request.method} {route.prefix}",
            tracing.header_value(request.headers),
            **{
                "http.request.method": request.method,
                "url.path": request.path,
                "serval.application": route.app,
                "serval.request_id": request.request_id,
            },
        ) as current:
            request.headers = tracing.with_header(request.headers, tracing.traceparent())
            status = await self._dispatch(route, request, scope, send)
            current.set_attribute("http.response.status_code", status)
            return status

    async def _dispatch(self, route: Any, request: HttpRequest, scope: Scope, send: Send) -> int:
        """Forward to the route's deployment (or its canary); returns the status sent."""
        canary = route.canary
        if canary is None:
            return await self._forward(route.app, route.deployment, request, send)
        to_canary = self.split.pick(canary, scope["headers"])
        if canary.shadow:
            if to_canary:
                self.split.shadow(canary, request, self._forward_quietly)
            to_canary = False
        app, deployment = (
            (canary.app, canary.deployment) if to_canary else (route.app, route.deployment)
        )
        started = time.perf_counter()
        status = await self._forward(app, deployment, request, send)
        self.split.record(route.app, to_canary, status, time.perf_counter() - started)
        return status

    def _header_ids(self, scope: Scope) -> tuple[str, str]:
        """(model id, request id) from the headers; a request id is made when none came."""
        model_id = ""
        request_id = ""
        for name, value in scope["headers"]:
            if name == _MODEL_ID:
                model_id = value.decode("latin-1")
            elif name == _REQUEST_ID:
                request_id = value.decode("latin-1")
        return model_id, request_id or f"{self._id_prefix}{next(self._ids):x}"

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.match(scope["path"])
        if route is None:
            logger.info("websocket %s: no route", scope["path"][:200])
            await send({"type": "websocket.close", "code": 1008})  # HTTP 403 to the client
            return
        model_id, request_id = self._header_ids(scope)
        connect = connect_message(
            scope, "" if route.prefix == "/" else route.prefix, request_id, model_id
        )
        router = self.ctx.router(route.app, route.deployment)
        key = (route.app, route.deployment, route.prefix)
        await forward_measured(router, connect, receive, send, self.ws_metrics, key)

    async def _forward(self, app: str, deployment: str, request: HttpRequest, send: Send) -> int:
        """Place the request, relay the answer; returns the status code sent."""
        router = self.ctx.router(app, deployment)
        try:
            if self._timeout is None:
                assignment = await router.assign(request)
            else:
                assignment = await asyncio.wait_for(router.assign(request), self._timeout)
        except asyncio.TimeoutError:
            timeout = RequestTimeoutError(
                f"request {request.request_id} timed out after {self._timeout}s (request_timeout_s)"
            )
            return await _error(send, timeout, request.request_id)
        except ServalError as exc:
            return await _error(send, exc, request.request_id)
        first = assignment.first
        if type(first) is HttpResponse:
            await send(
                {"type": "http.response.start", "status": first.status, "headers": first.headers}
            )
            await send({"type": "http.response.body", "body": first.body})
            return first.status
        if isinstance(first, ErrorReply):
            return await _error(send, error_from_reply(first), request.request_id)
        if isinstance(first, HttpResponseStart):
            await self._stream(first, assignment, send)
            return first.status
        assignment.close()
        await _plain(send, 502, f"unexpected reply {type(first).__name__} from the replica")
        return 502

    async def _forward_quietly(self, app: str, deployment: str, request: HttpRequest) -> int:
        """Shadow traffic: the same request, its answer discarded."""

        async def discard(message: dict[str, Any]) -> None:
            return None

        return await self._forward(app, deployment, request, discard)

    async def _stream(self, head: HttpResponseStart, assignment: Any, send: Send) -> None:
        await send({"type": "http.response.start", "status": head.status, "headers": head.headers})
        try:
            while True:
                msg = await assignment.receive()
                if isinstance(msg, BodyChunk):
                    await send({"type": "http.response.body", "body": msg.data, "more_body": True})
                elif isinstance(msg, StreamEnd):
                    break
                elif isinstance(msg, ErrorReply):
                    logger.error(
                        "stream failed after it started: %s: %s", msg.type_name, msg.message
                    )
                    break
        finally:
            assignment.close()
        await send({"type": "http.response.body", "body": b""})

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self._max_body:
                        raise _TooLarge
                except ValueError:
                    pass
                break
        msg = await receive()
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body", False):
            if len(body) > self._max_body:
                raise _TooLarge
            return body
        chunks = [body]
        size = len(body)
        while msg.get("more_body", False):
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _scrape(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.http_metrics is None:
            await _plain(send, 404, "metrics are off in this instance (SERVAL_METRICS=0)")
        else:
            await _respond(send, 200, [_METRICS], await metrics_text(self.ctx))

    async def _admin(self, path: str, send: Send) -> None:
        if path == "/-/healthz":
            await _plain(send, 200, "success")
        elif path == "/-/routes":
            table = {r.prefix: r.app for r in self.routes.routes}
            await _respond(send, 200, [_JSON], json.dumps(table).encode())
        else:
            await _plain(send, 404, f"Path '{path}' not found.")


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(send, status, [_TEXT, *(extra or [])], text.encode())


async def _error(send: Send, exc: BaseException, request_id: str) -> int:
    status = http_status_for(exc)
    extra = [(_REQUEST_ID, request_id.encode())]
    if isinstance(exc, BackPressureError):
        extra.append((b"retry-after", str(max(1, round(exc.retry_after_s))).encode()))
    await _plain(send, status, public_message(exc, request_id), extra)
    return status
