"""The gRPC ingress: Ray Serve's ``grpc_options``, served by the proxy with grpc.aio.

::

    serve.start(grpc_options={
        "port": 9000,
        "grpc_servicer_functions": ["app_pb2_grpc:add_ModelServicer_to_server"],
    })

Each servicer function is the ``add_XServicer_to_server`` that protoc generated. It is
called once with a recording server, which yields the service's method table: for each
method its request deserializer, response serializer and whether either side streams.
The proxy serves those methods on the gRPC port; a call goes to the ingress deployment
of the application named by the ``application`` metadata (or the only application), to
the deployment's method of the RPC's name, with the request message as its argument, as
Ray Serve does. A ``multiplexed_model_id`` metadata value routes like the HTTP header.

Errors: unknown application → NOT_FOUND naming it; a full queue → RESOURCE_EXHAUSTED
with a ``retry-after`` trailing metadata; ``request_timeout_s`` → DEADLINE_EXCEEDED;
an exception in the deployment → INTERNAL with its message.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from serval._import import import_attr
from serval.config import GRPCOptions
from serval.exceptions import (
    BackPressureError,
    BadRequestError,
    ConfigError,
    NotFoundError,
    ReplicaError,
    RequestTimeoutError,
    ServalError,
)
from serval.handle import DeploymentHandle
from serval.observability.ingress import GrpcMetrics
from serval.observability.logs_access import cut
from serval.proxy.model_routes import DirectInfer
from serval.proxy.routes import RouteTable
from serval.transport.messages import GetStatus

logger = logging.getLogger("serval.proxy")

T = TypeVar("T")

APPS_TTL_S = 1.0  # how long the application → ingress table is trusted


@dataclass(frozen=True)
class RpcMethod:
    """One method of a user's gRPC service, as its generated code registers it."""

    service: str
    name: str
    request_deserializer: Callable[[bytes], Any] | None
    response_serializer: Callable[[Any], bytes] | None
    request_streaming: bool
    response_streaming: bool


class _RecordingServer:
    """Stands in for ``grpc.Server`` when a generated ``add_XServicer_to_server`` runs."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers.append((service, handlers))


class _AnyServicer:
    """A servicer with every method: generated code only looks the methods up."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *args: None


def load_methods(paths: list[str]) -> list[RpcMethod]:
    """The methods the servicer functions register; a function that does not import or
    is not an ``add_XServicer_to_server`` is a ConfigError naming it."""
    methods: list[RpcMethod] = []
    for path in paths:
        try:
            add = import_attr(path)
        except Exception as exc:
            raise ConfigError(
                f"grpc_options.grpc_servicer_functions: cannot import {path!r}: {exc}"
            ) from None
        server = _RecordingServer()
        try:
            add(_AnyServicer(), server)
        except Exception as exc:
            raise ConfigError(
                f"grpc_options.grpc_servicer_functions: {path!r} is not a generated "
                f"add_XServicer_to_server function ({type(exc).__name__}: {exc})"
            ) from None
        methods.extend(_methods_of(server.handlers))
    return methods


def _methods_of(handlers: list[Any]) -> list[RpcMethod]:
    out = []
    for entry in handlers:
        if isinstance(entry, tuple):  # add_registered_method_handlers(service, {name: h})
            service, table = entry
        else:  # a generic handler made by method_handlers_generic_handler
            service, table = entry.service_name(), entry._method_handlers
        for name, h in table.items():
            out.append(
                RpcMethod(
                    service,
                    name.rsplit("/", 1)[-1],
                    h.request_deserializer,
                    h.response_serializer,
                    h.request_streaming,
                    h.response_streaming,
                )
            )
    return out


# The OIP v2 method the proxy can send straight to the model's replica (see
# serval.proxy.model_routes): its bytes are read and written here, not by grpcio.
DIRECT_METHOD = ("inference.GRPCInferenceService", "ModelInfer")


class GrpcIngress:
    """Routes the calls of the registered methods to the applications' ingress (and OIP
    ``ModelInfer`` calls of a many-models application to the model's replica)."""

    def __init__(
        self,
        ctx: Any,
        options: GRPCOptions,
        metrics: GrpcMetrics | None = None,
        routes: RouteTable | None = None,
        direct: DirectInfer | None = None,
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.metrics = metrics
        self.routes = routes
        self.direct = direct
        self._apps: dict[str, str] = {}
        self._apps_at = 0.0

    async def _ingress(self, app: str) -> tuple[str, str]:
        if time.monotonic() - self._apps_at > APPS_TTL_S or (app and app not in self._apps):
            status = await self.ctx.controller.call(GetStatus(), timeout_s=10)
            self._apps = {name: a["ingress"] for name, a in status["applications"].items()}
            self._apps_at = time.monotonic()
        if not app:
            if len(self._apps) == 1:
                return next(iter(self._apps.items()))
            raise NotFoundError(
                "set the 'application' metadata to pick an application; running: "
                f"{sorted(self._apps)}"
            )
        if app not in self._apps:
            raise NotFoundError(f"application {app!r} not found; running: {sorted(self._apps)}")
        return app, self._apps[app]

    async def _handle(self, method: RpcMethod, context: Any, call: _Call) -> DeploymentHandle:
        meta = _metadata(context)
        call.app = str(meta.get("application", ""))
        call.app, call.deployment = await self._ingress(call.app)
        handle = DeploymentHandle(call.deployment, call.app).options(
            method_name=method.name,
            multiplexed_model_id=str(meta.get("multiplexed_model_id", "")),
            stream=method.response_streaming,
        )
        return handle

    async def _through_ingress(
        self, method: RpcMethod, request: Any, context: Any, call: _Call
    ) -> Any:
        """A unary call answered by the application's ingress deployment."""
        handle = await self._handle(method, context, call)
        return await self._within_deadline(handle.remote(request))

    async def _within_deadline(self, answer: Awaitable[T]) -> T:
        """``answer``, within ``grpc_options.request_timeout_s`` when one is set."""
        timeout = self.options.request_timeout_s
        return await (asyncio.wait_for(answer, timeout) if timeout else answer)

    async def _direct_infer(
        self, raw: bytes, request: Any, context: Any, call: _Call
    ) -> bytes | None:
        """A ``ModelInfer`` answered by the model's replica (the serialized response),
        or None when the application does not route models itself (or splits its
        traffic: as for REST, that goes through the ingress)."""
        if self.routes is None or self.direct is None:
            return None
        meta = _metadata(context)
        app, _ = await self._ingress(str(meta.get("application", "")))
        route = self.routes.for_app(app)
        if (
            route is None
            or route.canary is not None
            or not (route.models and route.models.grpc_method)
        ):
            return None
        call.app = app
        version = request.model_version or None
        call.deployment, model_id = self.direct.resolve(route, request.model_name, version)
        request_id = str(meta.get("x-request-id", "")) or uuid.uuid4().hex
        answer = self.direct.grpc_infer(route, call.deployment, model_id, raw, request_id)
        return await self._within_deadline(answer)

    async def _answered(
        self, method: RpcMethod, context: Any, call: _Call, work: Awaitable[T]
    ) -> T:
        """``work``'s result, the call recorded as OK; or the call aborted with the
        status its error maps to (recorded too)."""
        try:
            result = await work
        except BaseException as exc:
            await _abort(context, exc, method, call)
            raise
        call.done("OK")
        return result

    def model_infer(self, method: RpcMethod) -> Callable[[bytes, Any], Any]:
        """OIP ``ModelInfer``, bytes in and out: to the model's replica when the
        application publishes model routes with a gRPC method (one hop, the message
        decoded where the model runs), else to the ingress like any other method."""
        assert method.request_deserializer is not None and method.response_serializer
        deserialize, encode = method.request_deserializer, method.response_serializer

        async def infer(raw: bytes, context: Any, call: _Call) -> bytes:
            try:
                request = deserialize(raw)
            except Exception as exc:  # protobuf's DecodeError
                raise BadRequestError(f"malformed {method.name} request: {exc}") from None
            result = await self._direct_infer(raw, request, context, call)
            if result is None:
                result = encode(await self._through_ingress(method, request, context, call))
            return result

        async def rpc(raw: bytes, context: Any) -> bytes:
            call = _Call(self.metrics, method)
            return await self._answered(method, context, call, infer(raw, context, call))

        return rpc

    def unary(self, method: RpcMethod) -> Callable[[Any, Any], Any]:
        async def rpc(request: Any, context: Any) -> Any:
            call = _Call(self.metrics, method)
            answer = self._through_ingress(method, request, context, call)
            return await self._answered(method, context, call, answer)

        return rpc

    def server_streaming(self, method: RpcMethod) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def rpc(request: Any, context: Any) -> AsyncIterator[Any]:
            call = _Call(self.metrics, method)
            try:
                handle = await self._handle(method, context, call)
                async for item in handle.remote(request):
                    yield item
                call.done("OK")
            except BaseException as exc:
                await _abort(context, exc, method, call)
                raise

        return rpc


class _Call:
    """One call's labels and start, recorded once when it ends (metrics on)."""

    __slots__ = ("app", "deployment", "method", "metrics", "started")

    def __init__(self, metrics: GrpcMetrics | None, method: RpcMethod) -> None:
        self.metrics = metrics
        self.method = f"{method.service}/{method.name}"
        self.app = ""
        self.deployment = ""
        self.started = time.perf_counter()

    def done(self, code: str) -> None:
        if self.metrics is not None:
            elapsed = time.perf_counter() - self.started
            self.metrics.observe(self.app, self.deployment, self.method, code, elapsed)
            self.metrics = None  # once


def _metadata(context: Any) -> dict[str, Any]:
    """The call's metadata (gRPC headers) as a dict."""
    return {k: v for k, v in (context.invocation_metadata() or ())}


async def _abort(context: Any, exc: BaseException, method: RpcMethod, call: _Call) -> None:
    import grpc

    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        call.done("CANCELLED")
        return
    if type(exc).__name__ == "AbortError":
        return  # context.abort() below, on its way out: recorded already
    where = f"{method.service}/{method.name}"
    if isinstance(exc, NotFoundError):
        code, text = grpc.StatusCode.NOT_FOUND, str(exc)
    elif isinstance(exc, BadRequestError):
        code, text = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    elif isinstance(exc, BackPressureError):
        context.set_trailing_metadata((("retry-after", str(max(1, round(exc.retry_after_s)))),))
        code, text = grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    elif isinstance(exc, TimeoutError | RequestTimeoutError):
        code, text = grpc.StatusCode.DEADLINE_EXCEEDED, f"{where} timed out"
    elif isinstance(exc, ReplicaError):
        code, text = grpc.StatusCode.INTERNAL, f"{exc.cause_type}: {exc.message}"
    elif isinstance(exc, ServalError):
        code, text = grpc.StatusCode.UNAVAILABLE, str(exc)
    else:
        logger.exception("gRPC call %s failed", where)
        code, text = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
    if code is not grpc.StatusCode.INTERNAL or isinstance(exc, ReplicaError):
        # the caller's mistake, an overload or a replica's error (its replica logged
        # the traceback): one line here, as for HTTP
        logger.info("gRPC %s: %s: %s", where, code.name, cut(text))
    call.done(code.name)
    await context.abort(code, text)


def _enable_reflection(server: Any, services: list[str]) -> None:
    """gRPC server reflection (grpcurl and friends list the services), as Ray Serve's
    ``enable_reflection`` does, when grpcio-reflection is installed."""
    try:
        from grpc_reflection.v1alpha import reflection
    except ImportError:
        logger.warning("enable_reflection: grpcio-reflection is not installed; no reflection")
        return
    reflection.enable_server_reflection([*services, reflection.SERVICE_NAME], server)


async def start_grpc_server(
    ctx: Any,
    host: str,
    options: GRPCOptions,
    metrics: GrpcMetrics | None = None,
    routes: RouteTable | None = None,
    direct: DirectInfer | None = None,
) -> Any:
    """Start a grpc.aio server for the servicer functions; returns it (or None when
    there are none). ``metrics`` records each call (the proxy's ``/-/metrics``);
    ``routes`` and ``direct`` (the HTTP side's) let OIP ``ModelInfer`` calls go straight
    to the model's replica."""
    if not options.grpc_servicer_functions:
        return None
    import grpc

    ingress = GrpcIngress(ctx, options, metrics, routes, direct)
    methods = load_methods(options.grpc_servicer_functions)
    by_service: dict[str, dict[str, Any]] = {}
    for m in methods:
        if m.request_streaming:
            logger.warning(
                "gRPC method %s/%s streams requests; serval serves unary and "
                "server-streaming methods only (as Ray Serve does)",
                m.service,
                m.name,
            )
            continue
        if (m.service, m.name) == DIRECT_METHOD and direct is not None and not m.response_streaming:
            handler = grpc.unary_unary_rpc_method_handler(ingress.model_infer(m))  # bytes
        elif m.response_streaming:
            handler = grpc.unary_stream_rpc_method_handler(
                ingress.server_streaming(m),
                request_deserializer=m.request_deserializer,
                response_serializer=m.response_serializer,
            )
        else:
            handler = grpc.unary_unary_rpc_method_handler(
                ingress.unary(m),
                request_deserializer=m.request_deserializer,
                response_serializer=m.response_serializer,
            )
        by_service.setdefault(m.service, {})[m.name] = handler
    # No SO_REUSEPORT (grpcio's default): a port another server holds is an error, not
    # a port whose calls the kernel would share between the two.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]
    )
    if options.enable_reflection:
        _enable_reflection(server, sorted(by_service))
    bound = server.add_insecure_port(f"{host}:{options.port}")
    if not bound:
        raise ConfigError(f"grpc_options.port: cannot listen on {host}:{options.port}")
    await server.start()
    logger.info("gRPC ingress on %s:%s (%s)", host, bound, ", ".join(sorted(by_service)))
    return server
