"""The replica's server: answers data-plane requests and the controller's commands.

Lifecycle (one per process)::

    WAITING  ── InitReplica ──▶ STARTING ── constructor ok ──▶ RUNNING ── Drain ──▶ DRAINING ─▶ exit
                                     └── constructor raised ──▶ (error reply; controller kills us)
"""

from __future__ import annotations

import asyncio
import enum
import gc
import json
import logging
import os
import pickle
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serval import context as ctx_mod
from serval._env import read_env
from serval._node import this_node
from serval.config import LoggingConfig
from serval.exceptions import BadRequestError, ServalError, http_status_for
from serval.observability import tracing
from serval.observability.logs import setup_logging
from serval.observability.logs_access import AccessLog, log_failure
from serval.observability.process import enabled as metrics_enabled
from serval.observability.scrape import answer_replica as answer_metrics
from serval.observability.scrape import install_replica as install_replica_metrics
from serval.observability.tables import LATENCY_BUCKETS_S, HistogramTable
from serval.replica.http import ASGIApp, ASGIResponder, RequestBody, make_scope, send_result
from serval.replica.routing_stats import record_routing_stats
from serval.replica.user_code import UserCode, is_generator
from serval.replica.websocket import WebSocketSession, serve_websocket
from serval.transport.busy_poll import BusyPoll
from serval.transport.codec import dumps, error_reply, loads
from serval.transport.connection import Connection
from serval.transport.messages import (
    Call,
    CallResult,
    Cancel,
    CheckHealth,
    CollectMetrics,
    Drain,
    ErrorReply,
    GetReplicaStats,
    GetRoutingStats,
    HttpRequest,
    HttpResponse,
    HttpResponseStart,
    InitReplica,
    Message,
    ModelCommand,
    Ok,
    Reconfigure,
    ReportModels,
    StreamEnd,
    StreamItem,
    WsClose,
    WsConnect,
    WsCredit,
    WsData,
)

logger = logging.getLogger("serval.replica")

MODEL_REPORT_INTERVAL_S = 0.1


class ReplicaState(enum.Enum):
    WAITING = "waiting"  # listening; the controller has not sent InitReplica yet
    STARTING = "starting"  # running the user's constructor
    RUNNING = "running"  # serving requests
    DRAINING = "draining"  # finishing in-flight requests, then the process exits


def _models_report(
    app: str, deployment: str, replica_id: str, current: set[str], last: set[str] | None
) -> ReportModels:
    if last is None:
        return ReportModels(app, deployment, replica_id, sorted(current), full=True)
    return ReportModels(
        app,
        deployment,
        replica_id,
        [],
        added=sorted(current - last),
        removed=sorted(last - current),
        full=False,
    )


class ReplicaServer:
    """One replica's request handler (see the module docstring for its states)."""

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id
        self.state = ReplicaState.WAITING
        self.code: UserCode | None = None
        self.asgi_app: ASGIApp | None = None
        self.app_name = ""
        self.deployment = ""
        self.in_flight = 0
        self.total = 0
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="serval-user")
        self.listener: asyncio.AbstractServer | None = None
        self.exit = asyncio.Event()
        self._reporter: asyncio.Task[None] | None = None
        self._tasks: dict[Connection, dict[int, asyncio.Task[None]]] = {}
        self._sockets: dict[tuple[Connection, int], WebSocketSession] = {}
        self.latency = HistogramTable(LATENCY_BUCKETS_S) if metrics_enabled() else None
        self.access = AccessLog(replica_id)
        # Awake for the next request for a moment after the last answer (module docs).
        self.busy_poll = BusyPoll(self, read_env().busy_poll_us / 1e6, max_in_flight=0)

    # -- dispatch ------------------------------------------------------------------

    def handle(self, conn: Connection, stream_id: int, msg: Message) -> None:
        kind = type(msg)
        if kind is HttpRequest:
            self._spawn(conn, stream_id, self._http(conn, stream_id, msg))  # type: ignore[arg-type]
        elif kind is Call:
            self._spawn(conn, stream_id, self._call(conn, stream_id, msg))  # type: ignore[arg-type]
        elif kind is WsData or kind is WsCredit or kind is WsClose:
            session = self._sockets.get((conn, stream_id))
            if session is not None:
                session.push(msg)
        elif kind is WsConnect:
            self._spawn(conn, stream_id, self._websocket(conn, stream_id, msg))  # type: ignore[arg-type]
        elif kind is Cancel:
            self._cancel(conn, stream_id)
        else:
            self._spawn(conn, stream_id, self._control(conn, stream_id, msg))

    def _spawn(self, conn: Connection, stream_id: int, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks = self._tasks.get(conn)
        if tasks is None:
            tasks = self._tasks[conn] = {}
        tasks[stream_id] = task
        task.add_done_callback(lambda _t: tasks.pop(stream_id, None))

    def _cancel(self, conn: Connection, stream_id: int) -> None:
        if stream_id == 0:  # the connection is gone: stop everything it asked for
            for task in self._tasks.pop(conn, {}).values():
                task.cancel()
            return
        running = self._tasks.get(conn, {}).get(stream_id)
        if running is not None:
            running.cancel()

    # -- data plane ------------------------------------------------------------------

    def _request_context(self, request_id: str, model_id: str, route: str) -> None:
        ctx_mod._set_request_context(
            ctx_mod.RequestContext(request_id, model_id, self.app_name, route)
        )

    async def _http(self, conn: Connection, sid: int, req: HttpRequest) -> None:
        if tracing.enabled():
            with tracing.span(
                f"{self.deployment} {req.method}",
                tracing.header_value(req.headers),
                **{"serval.request_id": req.request_id, "url.path": req.path},
            ):
                await self._serve_http(conn, sid, req)
        else:
            await self._serve_http(conn, sid, req)

    async def _serve_http(self, conn: Connection, sid: int, req: HttpRequest) -> None:
        started = time.perf_counter()
        self.in_flight += 1
        self.total += 1
        status = 0

        served = ctx_mod.ServedModel()  # @serval.multiplexed names the model version here
        ctx_mod._served_model.set(served)

        def send(msg: Message) -> None:
            nonlocal status
            if not status:  # HttpResponse / HttpResponseStart carry it
                status = getattr(msg, "status", 0)
                if served.version and isinstance(msg, HttpResponse | HttpResponseStart):
                    msg.headers = [*msg.headers, *served.headers()]
            conn.send(sid, msg)

        receive = RequestBody(req.body)
        try:
            code = self._ready_code()
            self._request_context(req.request_id, req.model_id, req.root_path)
            scope = make_scope(req)
            if self.asgi_app is not None:
                responder = ASGIResponder(send)
                await self.asgi_app(scope, receive, responder)
                if not responder.done:
                    send(StreamEnd())
            else:
                from starlette.requests import Request

                result = await code.call("__call__", (Request(scope, receive),), {})
                await send_result(result, send, scope, receive, code.iterate)
        except asyncio.CancelledError:
            status = status or 499  # the caller went away
            ctx_mod._mark_cancelled()
            receive.disconnect()
            raise
        except json.JSONDecodeError as exc:  # `await request.json()` on a malformed body
            error = BadRequestError(f"malformed JSON in the request body: {exc}")
            status = status or http_status_for(error)
            log_failure(logger, error, f"{req.method} {req.path} ({req.request_id})")
            send(error_reply(error))
        except Exception as exc:
            status = status or http_status_for(exc)
            log_failure(logger, exc, f"{req.method} {req.path} ({req.request_id})")
            send(error_reply(exc))
        finally:
            self.in_flight -= 1
            if self.latency is not None:
                route = req.root_path or "/"
                self.latency.observe((route, req.method), time.perf_counter() - started)
            self.access.http(req.method, req.path, status, started, req.request_id, req.model_id)
            self.busy_poll.arm()

    async def _websocket(self, conn: Connection, sid: int, msg: WsConnect) -> None:
        """One WebSocket for the deployment's ASGI app (see serval/replica/websocket.py)."""
        self.in_flight += 1
        self.total += 1
        session = WebSocketSession(conn, sid)
        self._sockets[(conn, sid)] = session
        try:
            if self.code is None:
                session.close(1011, f"replica {self.replica_id} is not initialized yet")
                return
            self._request_context(msg.request_id, msg.model_id, msg.root_path)
            await serve_websocket(self.asgi_app, session, msg)
        finally:
            del self._sockets[(conn, sid)]
            self.in_flight -= 1

    async def _call(self, conn: Connection, sid: int, msg: Call) -> None:
        if tracing.enabled():
            with tracing.span(
                f"{self.deployment}.{msg.method}",
                msg.trace,
                **{"serval.model_id": msg.model_id},
            ):
                await self._serve_call(conn, sid, msg)
        else:
            await self._serve_call(conn, sid, msg)

    async def _serve_call(self, conn: Connection, sid: int, msg: Call) -> None:
        started = time.perf_counter()
        self.in_flight += 1
        self.total += 1
        ok = False
        try:
            code = self._ready_code()
            self._request_context(msg.request_id, msg.model_id, "")
            args, kwargs = loads(msg.payload)
            result = await code.call(msg.method, args, kwargs)
            if msg.stream:
                if not is_generator(result):
                    raise TypeError(
                        f"method {msg.method!r} did not return a generator, but the handle "
                        "was called with stream=True"
                    )
                async for item in code.iterate(result):
                    conn.send(sid, StreamItem(dumps(item)))
                    await conn.drain()
                conn.send(sid, StreamEnd())
            else:
                if is_generator(result):
                    raise TypeError(
                        f"method {msg.method!r} returned a generator; call it through "
                        "handle.options(stream=True)"
                    )
                conn.send(sid, CallResult(dumps(result)))
            ok = True
        except asyncio.CancelledError:
            ctx_mod._mark_cancelled()
            raise
        except Exception as exc:
            log_failure(logger, exc, f"call {msg.method} ({msg.request_id})")
            conn.send(sid, error_reply(exc))
        finally:
            self.in_flight -= 1
            if self.latency is not None:
                self.latency.observe(("", msg.method), time.perf_counter() - started)
            self.access.call(msg.method, ok, started, msg.request_id, msg.model_id)
            self.busy_poll.arm()

    def _ready_code(self) -> UserCode:
        if self.code is None:
            raise ServalError(f"replica {self.replica_id} is not initialized yet")
        return self.code

    # -- control plane ---------------------------------------------------------------

    async def _control(self, conn: Connection, sid: int, msg: Message) -> None:
        try:
            if isinstance(msg, InitReplica):
                value: Any = await self._init(msg)
            elif isinstance(msg, CheckHealth):
                await self._check_health()
                value = self.placement
            elif isinstance(msg, GetRoutingStats):
                value = await record_routing_stats(self._ready_code())
            elif isinstance(msg, Reconfigure):
                await self._ready_code().call_optional("reconfigure", msg.user_config)
                value = None
            elif isinstance(msg, Drain):
                await self._drain(msg)
                value = None
            elif isinstance(msg, GetReplicaStats):
                value = self.stats()
            elif isinstance(msg, ModelCommand):
                value = await self._model_command(msg)
            elif isinstance(msg, CollectMetrics):
                value = await answer_metrics()
            else:
                raise ServalError(f"replica cannot handle {type(msg).__name__}")
            conn.send(sid, Ok(value))
        except Exception as exc:
            reply: ErrorReply = error_reply(exc)
            if isinstance(msg, InitReplica):
                reply.kind = "deploy_failed"
            conn.send(sid, reply)
        if isinstance(msg, Drain):
            self.exit.set()

    async def _init(self, msg: InitReplica) -> dict[str, Any]:
        if self.state is not ReplicaState.WAITING:
            raise ServalError(f"replica {self.replica_id} was already initialized")
        self.state = ReplicaState.STARTING
        self.app_name, self.deployment = msg.app_name, msg.deployment_name
        self.access.application, self.access.deployment = msg.app_name, msg.deployment_name
        if msg.logging_config is not None:
            setup_logging(
                f"replica {self.replica_id}", LoggingConfig.model_validate(msg.logging_config)
            )
        for entry in reversed(msg.sys_path):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        if msg.cwd and os.path.isdir(msg.cwd):
            os.chdir(msg.cwd)
        from serval import _process

        _process.init_on_running_loop(msg.controller_address)
        target = pickle.loads(msg.serialized_def)
        args, kwargs = loads(msg.init_payload)
        replica_ctx = ctx_mod.ReplicaContext(
            app_name=msg.app_name,
            deployment=msg.deployment_name,
            replica_id=ctx_mod.ReplicaID(msg.replica_id, msg.deployment_name, msg.app_name),
        )
        ctx_mod._set_replica_context(replica_ctx)
        is_function = not isinstance(target, type)
        code = UserCode(target, is_function, self.executor)
        await code.construct(args, kwargs)
        replica_ctx.servable_object = code.instance
        app = getattr(target, "__serval_asgi_app__", None)
        if app is not None:
            from serval.ingress import bind_asgi_app

            self.asgi_app = bind_asgi_app(app, target, code.instance)
        if msg.user_config is not None:
            if not code.has_method("reconfigure"):
                raise ServalError(
                    f"user_config was given but {getattr(target, '__name__', target)!r} "
                    "has no reconfigure(config) method"
                )
            await code.call("reconfigure", (msg.user_config,), {})
        self.code = code
        # Everything built so far (imported libraries, the user's constructor) lives as
        # long as the replica: move it out of the cycle collector's sight, so that full
        # collections (Python's own, and the model store's after evictions) scan only
        # what serving creates — a full collection of a process that imported
        # scikit-learn takes ~60 ms with the objects in view, well under 1 ms without.
        gc.freeze()
        self.state = ReplicaState.RUNNING
        install_replica_metrics(self)
        self._reporter = asyncio.get_running_loop().create_task(self._report_models())
        logger.info(
            "replica %s of %s/%s is running", self.replica_id, msg.app_name, msg.deployment_name
        )
        return {"pid": os.getpid(), **self.placement}

    async def _report_models(self) -> None:
        """Tell the controller which models this replica holds, when that changes, so
        routers send a model's requests where it is already loaded: all of them first,
        then only what changed (a replica may hold thousands), all again on a resync."""
        from serval import _process

        last: set[str] | None = None  # what the controller knows (None: unknown)
        seq = 0
        while self.state is ReplicaState.RUNNING:
            await asyncio.sleep(MODEL_REPORT_INTERVAL_S)
            source = sys.modules.get("serval.models.multiplexed")
            if source is None:
                continue
            current = set(source.loaded_model_ids())
            if current == last:
                continue
            seq += 1
            msg = _models_report(self.app_name, self.deployment, self.replica_id, current, last)
            msg.seq = seq
            try:
                reply = await _process.current().controller.call(msg, timeout_s=10)
                last = None if (reply or {}).get("resync") else current
            except ServalError as exc:
                last = None  # the next report sends everything
                logger.debug("could not report models: %s", exc)

    async def _model_command(self, msg: ModelCommand) -> Any:
        source = sys.modules.get("serval.models.multiplexed")
        if source is None:
            raise ServalError(
                f"replica {self.replica_id} serves no multiplexed models (@serval.multiplexed)"
            )
        if msg.op == "list":  # the models in memory, with their hit counts
            return source.describe()
        if msg.op == "stats":  # the tiers as this replica sees them, and each hot cache
            models = sys.modules["serval.models"]
            return {
                **models.stats().as_dict(),
                "caches": {cache.name: cache.stats().as_dict() for cache in source.caches()},
            }
        return await source.admin(msg.op, msg.model_ids)

    async def _check_health(self) -> None:
        code = self._ready_code()
        await code.call_optional("check_health")

    async def _drain(self, msg: Drain) -> None:
        self.state = ReplicaState.DRAINING
        if self.listener is not None:
            self.listener.close()  # no new connections; routers already stopped picking us
        deadline = time.monotonic() + msg.timeout_s
        # Routers that picked us before they heard we are leaving may still send.
        await asyncio.sleep(min(msg.wait_loop_s, msg.timeout_s))
        while self.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.in_flight:
            logger.warning(
                "replica %s exits with %d requests still running after %.1fs",
                self.replica_id,
                self.in_flight,
                msg.timeout_s,
            )
        if self.code is not None:
            try:
                await self.code.call_optional("__del__")
            except Exception:
                logger.exception("__del__ of replica %s raised", self.replica_id)

    @property
    def placement(self) -> dict[str, Any]:
        """Where this replica runs (routers' locality: ``RunningReplica.node_id``)."""
        node_id, zone = this_node()
        return {"node_id": node_id, "availability_zone": zone}

    def stats(self) -> dict[str, Any]:
        return {"in_flight": self.in_flight, "total": self.total, "state": self.state.value}
