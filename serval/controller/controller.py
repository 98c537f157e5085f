"""The controller process's brain: desired state in, running replicas out.

It answers RPCs (deploy, delete, status, subscribe, shutdown) on its address, and
runs one loop that reconciles every application whenever something changed and on
a tick, starts the health checks that are due, and keeps the HTTP proxy alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from serval.canary import CanaryConfig
from serval.controller.application_state import Application, ApplicationStatus
from serval.controller.canary_state import CanaryState
from serval.controller.checkpoint import Checkpointer
from serval.controller.deployment_state import DeploymentState, Deps
from serval.controller.proxy_state import ProxyState
from serval.controller.publisher import ROUTES, Publisher
from serval.controller.replica import ReplicaStatus
from serval.exceptions import ConfigError, DeploymentFailedError, NotFoundError, ServalError
from serval.observability.scrape import answer_controller as answer_metrics
from serval.observability.scrape import install_controller as install_controller_metrics
from serval.runtime.base import Runtime
from serval.transport import auth
from serval.transport.codec import error_reply
from serval.transport.connection import Connection
from serval.transport.messages import (
    AppSpec,
    CanaryRoute,
    CollectMetrics,
    DeleteApps,
    DeployApps,
    EndCanary,
    GetInfo,
    GetStatus,
    ListDeployments,
    ListModels,
    Message,
    ModelAdmin,
    Ok,
    ReportLoad,
    ReportModels,
    ReportTraffic,
    RouteInfo,
    RoutesApplied,
    SetCanary,
    SetModelRoutes,
    SetUserConfig,
    Shutdown,
    Subscribe,
    WaitApps,
)

logger = logging.getLogger("serval.controller")

TICK_S = 0.25
MODEL_ROUTES_WAIT_S = 10.0  # how long a new model routing table waits for the proxies


class Controller:
    def __init__(
        self,
        address: str,
        runtime: Runtime,
        proxy: ProxyState | None,
        info: dict[str, Any],
        checkpoint: Checkpointer | None = None,
    ) -> None:
        self.address = address
        self.checkpoint = checkpoint
        self.runtime = runtime
        self.proxy = proxy
        self.info = info
        self.publisher = Publisher()
        self.apps: dict[str, Application] = {}
        self.canaries: dict[str, CanaryState] = {}
        self.rollback_reasons: dict[str, str] = {}  # why a canary was rolled back
        self._wake = asyncio.Event()
        self.deps = Deps(runtime, self.publisher, address, self._wake.set)
        self.stopped = asyncio.Event()
        self.shut_down = False  # serval.shutdown() asked for it (not just this process ending)
        self._tasks: set[asyncio.Task[None]] = set()
        install_controller_metrics(self)

    # -- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        while not self.stopped.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self.reconcile()

    def reconcile(self) -> None:
        now = time.monotonic()
        for name, app in list(self.apps.items()):
            for dep in app.deployments.values():
                dep.autoscale(now)
            app.reconcile()
            for dep in app.deployments.values():
                dep.check_health(now)
                dep.poll_routing_stats(now)
            if app.gone:
                del self.apps[name]
        self.publisher.publish_routes(self._routes())
        if self.proxy is not None and not self.stopped.is_set():
            self.proxy.ensure_running()
        if self.checkpoint is not None:
            self.checkpoint.save(self)

    def _routes(self) -> list[RouteInfo]:
        routes = []
        for app in self.apps.values():
            route = app.route()
            if route is None:
                continue
            canary = self.canaries.get(app.name)
            target = self.apps.get(canary.canary_app) if canary is not None else None
            if canary is not None and target is not None and not target.deleting:
                cfg = canary.config
                route.canary = CanaryRoute(
                    target.name,
                    target.spec.ingress,
                    cfg.weight,
                    cfg.sticky_header or "",
                    cfg.shadow,
                )
            routes.append(route)
        return sorted(routes, key=lambda r: r.prefix)

    # -- RPC -----------------------------------------------------------------------------

    def handle(self, conn: Connection, stream_id: int, msg: Message) -> None:
        if isinstance(msg, Subscribe):
            for key in msg.keys:
                self.publisher.subscribe(conn, stream_id, key)
            return
        if stream_id == 0:  # a connection closed (Cancel from Connection); nothing to stop
            return
        task = asyncio.get_running_loop().create_task(self._answer(conn, stream_id, msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, conn: Connection, stream_id: int, msg: Message) -> None:
        try:
            value = await self._dispatch(msg)
            conn.send(stream_id, Ok(value))
        except Exception as exc:
            reply = error_reply(exc, user=False)
            if isinstance(exc, DeploymentFailedError):
                reply.kind = "deploy_failed"
            elif isinstance(exc, ConfigError):
                reply.kind = "config"
            conn.send(stream_id, reply)
        if isinstance(msg, Shutdown):
            self.stopped.set()

    async def _dispatch(self, msg: Message) -> Any:
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise ServalError(f"the controller does not handle {type(msg).__name__}")
        result = handler(msg)
        return await result if asyncio.iscoroutine(result) else result

    @property
    def _handlers(self) -> dict[type, Callable[[Any], Any]]:
        return {
            DeployApps: lambda m: self.deploy(m.apps),
            WaitApps: lambda m: self.wait_apps(m.names, m.timeout_s),
            DeleteApps: lambda m: self.delete(m.names, m.wait),
            GetStatus: lambda m: self.status(),
            ListDeployments: lambda m: self.list_deployments(),
            GetInfo: lambda m: {**self.info, "rejected_peers": auth.rejected_peers_total()},
            Shutdown: lambda m: self.shutdown(),
            SetCanary: lambda m: self.set_canary(m.app, m.canary_app, m.config),
            EndCanary: lambda m: self.end_canary(m.app, m.promote),
            ReportTraffic: self._on_traffic,
            SetUserConfig: self._on_user_config,
            SetModelRoutes: self._on_model_routes,
            ListModels: lambda m: {
                f"{a.name}/{d.name}": d.models()
                for a in self.apps.values()
                for d in a.deployments.values()
            },
            ModelAdmin: lambda m: self._deployment(m.app, m.deployment).model_admin(
                m.op, m.model_ids
            ),
            ReportLoad: lambda m: self._if_deployment(
                m.app, m.deployment, lambda d: d.record_load(m.router_id, m.ongoing)
            ),
            ReportModels: self._on_models,
            RoutesApplied: self._on_routes_applied,
            CollectMetrics: lambda m: answer_metrics(self._replica_connections(), m.timeout_s),
        }

    def _replica_connections(self) -> list[Connection]:
        return [
            r.conn
            for a in self.apps.values()
            for d in a.deployments.values()
            for r in d.replicas.values()
            if r.status is ReplicaStatus.RUNNING and r.conn is not None
        ]

    def _deployment(self, app: str, name: str) -> DeploymentState:
        found = self.apps.get(app)
        dep = found.deployments.get(name) if found is not None else None
        if dep is None:
            raise NotFoundError(f"deployment {name!r} of application {app!r} does not exist")
        return dep

    def _on_models(self, msg: ReportModels) -> dict[str, bool]:
        found = self.apps.get(msg.app)
        dep = found.deployments.get(msg.deployment) if found is not None else None
        return {"resync": dep is not None and not dep.report_models(msg)}

    def _if_deployment(self, app: str, name: str, act: Callable[[DeploymentState], None]) -> None:
        """Reports from replicas and routers about a deployment that may be gone by now."""
        found = self.apps.get(app)
        dep = found.deployments.get(name) if found is not None else None
        if dep is not None:
            act(dep)

    async def _on_traffic(self, msg: ReportTraffic) -> None:
        canary = self.canaries.get(msg.app)
        if canary is None:
            return
        canary.record(msg.version, msg.requests, msg.errors, msg.latencies_ms)
        reason = canary.verdict()
        if reason is not None:
            logger.warning("rolling back the canary of %r: %s", msg.app, reason)
            self.rollback_reasons[msg.app] = reason
            await self.end_canary(msg.app, promote=False)

    async def _on_user_config(self, msg: SetUserConfig) -> dict[str, Any]:
        dep = self._deployment(msg.app, msg.deployment)
        try:
            dep.set_user_config(msg.user_config)
        except ValueError as exc:
            raise ConfigError(
                f"invalid user_config for {msg.app}/{msg.deployment}: {exc}"
            ) from None
        self.reconcile()
        return await self.wait_apps([msg.app], 60)

    async def _on_model_routes(self, msg: SetModelRoutes) -> None:
        """An ingress' model routing table: kept with its application (so a restarted
        controller has it), routed with by every proxy before this answers."""
        app = self.apps.get(msg.app)
        if app is None:
            raise NotFoundError(f"application {msg.app!r} does not exist")
        if app.spec.model_routes == msg.routes:
            return
        app.spec.model_routes = msg.routes
        self.reconcile()
        deadline = time.monotonic() + MODEL_ROUTES_WAIT_S
        while not self._proxies_caught_up() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _on_routes_applied(self, msg: RoutesApplied) -> None:
        if self.proxy is not None:
            self.proxy.routes_applied(msg.proxy, msg.version)

    def deploy(self, specs: list[AppSpec]) -> None:
        taken = {r.prefix: r.app for r in self._routes()}
        for spec in specs:
            _check_route_prefix(spec.route_prefix)
            owner = taken.get(spec.route_prefix or "")
            if spec.route_prefix is not None and owner not in (None, spec.name):
                raise ConfigError(
                    f"route_prefix {spec.route_prefix!r} is already used by application "
                    f"{owner!r}; pick another route_prefix or delete {owner!r} first"
                )
        for spec in specs:
            app = self.apps.get(spec.name)
            if app is None:
                self.apps[spec.name] = Application(spec, self.deps)
                logger.info("deploying application %r", spec.name)
            else:
                app.apply(spec)
                logger.info("updating application %r", spec.name)
        self.reconcile()

    async def wait_apps(self, names: list[str], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            pending = []
            for name in names:
                app = self.apps.get(name)
                if app is None:
                    raise NotFoundError(f"application {name!r} does not exist")
                status, message = app.status()
                if status is ApplicationStatus.DEPLOY_FAILED:
                    raise DeploymentFailedError(
                        f"application {name!r} failed to deploy:\n{message}"
                    )
                if status is not ApplicationStatus.RUNNING:
                    pending.append(name)
            if not pending and self._proxies_caught_up():
                return self.status()
            if time.monotonic() > deadline:
                raise ServalError(f"applications {pending} were not running after {timeout_s}s")
            await asyncio.sleep(0.02)

    def set_canary(self, app: str, canary_app: str, config: dict[str, Any]) -> None:
        for name in (app, canary_app):
            if name not in self.apps:
                raise NotFoundError(f"application {name!r} does not exist")
        if self.apps[app].spec.route_prefix is None:
            raise ConfigError(f"application {app!r} has no route_prefix: nothing to split")
        self.canaries[app] = CanaryState(app, canary_app, CanaryConfig.model_validate(config))
        self.rollback_reasons.pop(app, None)
        logger.info(
            "canary %r gets %.0f%% of %r's traffic",
            canary_app,
            100 * self.canaries[app].config.weight,
            app,
        )
        self.reconcile()

    async def end_canary(self, app: str, promote: bool) -> None:
        canary = self.canaries.pop(app, None)
        if canary is None:
            raise NotFoundError(f"application {app!r} has no canary")
        self.reconcile()  # routes without the split first
        target = self.apps.get(canary.canary_app)
        if promote and target is not None:
            stable = self.apps[app]
            spec = target.spec
            stable.apply(
                type(spec)(
                    name=app,
                    route_prefix=stable.spec.route_prefix,
                    ingress=spec.ingress,
                    deployments=spec.deployments,
                    sys_path=spec.sys_path,
                    cwd=spec.cwd,
                    import_path=spec.import_path,
                )
            )
            logger.info("promoted the canary of %r", app)
        await self.delete([canary.canary_app], wait=False)

    def _proxies_caught_up(self) -> bool:
        """Whether the proxy routes with the current table, so a request sent right
        after ``serval.run()`` returns finds its route."""
        if self.proxy is None or self.stopped.is_set():
            return True
        return self.proxy.caught_up(self.publisher.current(ROUTES).version)

    async def delete(self, names: list[str], wait: bool) -> None:
        for name in names:
            app = self.apps.get(name)
            if app is not None:
                logger.info("deleting application %r", name)
                app.delete()
        self.reconcile()
        while wait and any(n in self.apps for n in names):
            await asyncio.sleep(0.02)
            self.reconcile()

    async def shutdown(self) -> None:
        logger.info("shutting down")
        self.shut_down = True
        await asyncio.wait_for(self.delete(list(self.apps), wait=True), 60)
        if self.proxy is not None:
            await self.proxy.stop()

    def status(self) -> dict[str, Any]:
        apps: dict[str, Any] = {}
        for name, app in self.apps.items():
            status, message = app.status()
            apps[name] = {
                "status": status.value,
                "message": message,
                "route_prefix": app.spec.route_prefix,
                "ingress": app.spec.ingress,
                "import_path": app.spec.import_path,
                "canary": self._canary_status(name),
                "last_deployed_time_s": app.last_deployed,
                "deployments": {
                    dname: {
                        "status": d.status().value,
                        "message": d.message,
                        "replica_states": d.replica_states(),
                        "target_replicas": d.target_count,
                        "replicas": {r.replica_id: r.status.value for r in d.replicas.values()},
                    }
                    for dname, d in app.deployments.items()
                },
            }
        proxies = {} if self.proxy is None else self.proxy.statuses()
        return {"applications": apps, "proxies": proxies, "info": self.info}

    def _canary_status(self, app: str) -> dict[str, Any] | None:
        canary = self.canaries.get(app)
        if canary is None:
            reason = self.rollback_reasons.get(app)
            return {"rolled_back": reason} if reason else None
        return {
            "app": canary.canary_app,
            "weight": canary.config.weight,
            "stable": canary.stable.summary(),
            "canary": canary.canary.summary(),
        }

    def list_deployments(self) -> list[dict[str, Any]]:
        out = []
        for app in self.apps.values():
            for d in app.deployments.values():
                out.append(
                    {
                        "app": app.name,
                        "name": d.name,
                        "config": d.spec.config,
                        "serialized_def": d.spec.serialized_def,
                        "route_prefix": app.spec.route_prefix if d.is_ingress else None,
                    }
                )
        return out


def _check_route_prefix(prefix: str | None) -> None:
    if prefix is None:
        return
    if not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
        raise ConfigError(
            f"invalid route_prefix {prefix!r}: it must start with '/' and not end with '/' "
            "(for example '/' or '/api')"
        )
    if "{" in prefix or "}" in prefix:
        raise ConfigError(f"invalid route_prefix {prefix!r}: it may not contain wildcards")
