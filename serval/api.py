"""The public functions: start, run, status, delete, shutdown, handles.

Example::

    import serval as serve

    @serve.deployment
    def hello(request):
        return f"Hello {request.query_params['name']}!"

    serve.run(hello.bind(), name="hello", route_prefix="/hello")
    # curl 'http://127.0.0.1:8000/hello?name=x'  ->  Hello x!
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serval import _driver, _process
from serval._build import build_app_spec
from serval.canary import CanaryConfig, canary_app_name
from serval.config import GRPCOptions, HTTPOptions, LoggingConfig, validated
from serval.context import get_replica_context
from serval.deployment import Application, Deployment
from serval.exceptions import ConfigError, ControllerError, NotFoundError, ServalError
from serval.handle import DeploymentHandle
from serval.observability import tracing
from serval.observability.tracing import TracingConfig
from serval.status import ServeStatus
from serval.transport.messages import (
    DeleteApps,
    DeployApps,
    EndCanary,
    GetStatus,
    ListDeployments,
    ModelAdmin,
    SetCanary,
    SetUserConfig,
    Shutdown,
    WaitApps,
)

logger = logging.getLogger("serval")

DEPLOY_TIMEOUT_S = 600.0


def _call(msg: Any, timeout_s: float | None = 120.0) -> Any:
    ctx = _process.current()
    return ctx.run_sync(ctx.controller.call(msg, timeout_s=timeout_s))


def start(
    http_options: HTTPOptions | dict[str, Any] | None = None,
    *,
    detached: bool = False,
    runtime: str | None = None,
    address: str | None = None,
    proxy_location: str | None = None,
    grpc_options: GRPCOptions | dict[str, Any] | None = None,
    logging_config: LoggingConfig | dict[str, Any] | None = None,
    tracing_config: TracingConfig | dict[str, Any] | None = None,
    **_ray_compat: Any,
) -> None:
    """Start serval on this machine (or connect to the instance already running).

    ``http_options`` (or a dict of its fields): host, port, request_timeout_s, ...
    ``proxy_location`` (Ray Serve's): ``"HeadOnly"``, ``"EveryNode"`` or ``"Disabled"``
    (no HTTP proxy), the same as ``http_options["location"]``.
    ``grpc_options`` (Ray Serve's): ``port`` and ``grpc_servicer_functions`` (the
    generated ``add_XServicer_to_server`` functions, as ``"module:function"``) start a
    gRPC ingress in the proxy; a function that does not import fails here, naming it.
    ``tracing_config`` (Ray Serve's): OpenTelemetry spans across proxy → replica →
    handle calls (see :mod:`serval.observability.tracing`), for an instance started here.
    ``detached=True`` keeps serval running after this process exits.
    ``runtime``: ``"local"`` (default: processes on this machine) or ``"ray"`` (replicas
    placed by Ray; ``address`` = ``"auto"`` or ``"ray://host:10001"``, default: a new
    local Ray instance).
    ``logging_config`` (a LoggingConfig or its fields): how the controller and proxies
    log, and the default of every deployment that sets none.
    """
    from serval.runtime import RUNTIMES

    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; available: {sorted(RUNTIMES)}")
    options = validated(HTTPOptions, http_options, "http_options")
    if proxy_location is not None:
        location = getattr(proxy_location, "value", proxy_location)
        if location not in _PROXY_LOCATIONS:
            raise ConfigError(
                f"invalid start() option 'proxy_location' = {proxy_location!r}: must be one "
                f"of {sorted(_PROXY_LOCATIONS)}"
            )
        options = options.model_copy(update={"location": _PROXY_LOCATIONS[location]})
    if grpc_options is not None:
        grpc = validated(GRPCOptions, grpc_options, "grpc_options")
        if grpc.grpc_servicer_functions:
            from serval.proxy.grpc_ingress import load_methods

            load_methods(grpc.grpc_servicer_functions)  # fail here, not in the proxy
        options = options.model_copy(update={"grpc_options": grpc})
    instance_env: dict[str, str] = {}  # what the instance's processes inherit
    if logging_config is not None:
        config = validated(LoggingConfig, logging_config, "logging_config")
        instance_env["SERVAL_LOGGING_CONFIG"] = config.model_dump_json()
    traced = validated(TracingConfig, tracing_config, "tracing_config") if tracing_config else None
    if traced is not None and traced.enabled and traced.exporter_import_path:
        tracing.check_exporter(traced.exporter_import_path)  # fail here, not in every replica
    if traced is not None and traced.enabled:
        instance_env[tracing.ENV_VAR] = traced.model_dump_json()
    else:  # an instance started here traces only when asked to
        instance_env[tracing.ENV_VAR] = ""
    with _environ(instance_env):
        _driver.connect_or_start(options, detached=detached, runtime=runtime, address=address)


class _environ:
    """Set environment variables for the duration of a ``with`` block."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for key, value in self._values.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *_exc: object) -> None:
        for key, old in self._saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


_PROXY_LOCATIONS = {"HeadOnly": "HeadOnly", "EveryNode": "EveryNode", "Disabled": "NoServer"}


def _ensure_started() -> None:
    if not _process.is_connected():
        _driver.connect_or_start()


def run(
    target: Application | Deployment,
    *,
    name: str = "default",
    route_prefix: str | None = "/",
    blocking: bool = False,
    canary: CanaryConfig | dict[str, Any] | float | None = None,
    logging_config: LoggingConfig | dict[str, Any] | None = None,
    _import_path: str = "",
    _local_testing_mode: bool = False,
    **_ignored: Any,
) -> DeploymentHandle:
    """Deploy an application and wait until it runs; returns a handle to its ingress.

    ``_local_testing_mode=True`` (for unit tests, as in Ray Serve) constructs the
    application in this process instead, one instance per deployment, reachable through
    the returned handle only: no serval instance, no HTTP (see
    :mod:`serval._local_testing`).

    With ``canary`` (a CanaryConfig, its fields as a dict, or a weight such as 0.1) the
    application is deployed beside the running ``name`` and gets that share of its
    traffic until :func:`promote` or :func:`rollback`.
    ``logging_config`` (a LoggingConfig or its fields) applies to every deployment of the
    application that sets none itself.
    Raises ``DeploymentFailedError`` (with the replica's traceback) when it cannot start.
    """
    if isinstance(target, Deployment):
        target = target.bind()
    if not isinstance(target, Application):
        raise ConfigError(
            f"serval.run() takes an application (deployment.bind(...)), got {target!r}"
        )
    if not isinstance(name, str) or not name:
        raise ConfigError(f"invalid application name {name!r}: must be a non-empty string")
    if _local_testing_mode:
        if canary is not None:
            raise ConfigError("canary cannot be combined with _local_testing_mode")
        from serval._local_testing import run_local

        return run_local(target, name)
    prefix = target.deployment.route_prefix or route_prefix
    app_logging = (
        None
        if logging_config is None
        else validated(LoggingConfig, logging_config, "logging_config").model_dump(
            mode="json", exclude_unset=True
        )
    )
    canary_config = None
    if canary is not None:
        canary_config = validated(
            CanaryConfig,
            {"weight": canary} if isinstance(canary, int | float) else canary,
            "canary",
        )
    _ensure_started()
    if canary_config is not None:
        return _run_canary(target, name, canary_config, _import_path)
    spec = build_app_spec(target, name, prefix)
    spec.import_path = _import_path
    for dep in spec.deployments:
        if app_logging is not None and dep.config.get("logging_config") is None:
            dep.config["logging_config"] = app_logging
    _call(DeployApps([spec]))
    _call(WaitApps([name], DEPLOY_TIMEOUT_S), timeout_s=DEPLOY_TIMEOUT_S + 10)
    handle = DeploymentHandle(spec.ingress, name)
    if blocking:
        _block_until_interrupted()
    return handle


@dataclass(frozen=True)
class RunTarget:
    """One application for :func:`run_many` (Ray Serve's ``serve.RunTarget``)."""

    target: Application | Deployment
    name: str = "default"
    route_prefix: str | None = "/"
    logging_config: LoggingConfig | dict[str, Any] | None = None
    external_scaler_enabled: bool = False


def run_many(
    targets: Sequence[RunTarget],
    blocking: bool = False,
    wait_for_ingress_deployment_creation: bool = True,
    wait_for_applications_running: bool = True,
    **_ray_compat: Any,
) -> list[DeploymentHandle]:
    """Deploy several applications in one step; returns their ingress handles in order.

    The controller receives them together (one reconcile, no partial state), then this
    waits until all run (unless ``wait_for_applications_running=False``).

    Example::

        serve.run_many([serve.RunTarget(a.bind(), name="a", route_prefix="/a"),
                        serve.RunTarget(b.bind(), name="b", route_prefix="/b")])
    """
    specs = []
    for i, run_target in enumerate(targets):
        if not isinstance(run_target, RunTarget):
            raise ConfigError(f"run_many() targets[{i}] must be a RunTarget, got {run_target!r}")
        if run_target.external_scaler_enabled:
            raise ConfigError(
                f"run_many() targets[{i}]: external_scaler_enabled is not supported by serval"
            )
        app = run_target.target
        app = app.bind() if isinstance(app, Deployment) else app
        if not isinstance(app, Application):
            raise ConfigError(f"run_many() targets[{i}].target must be an application")
        prefix = app.deployment.route_prefix or run_target.route_prefix
        spec = build_app_spec(app, run_target.name, prefix)
        if run_target.logging_config is not None:
            app_logging = validated(
                LoggingConfig, run_target.logging_config, f"targets[{i}].logging_config"
            ).model_dump(mode="json", exclude_unset=True)
            for dep in spec.deployments:
                if not dep.config.get("logging_config"):
                    dep.config["logging_config"] = app_logging
        specs.append(spec)
    names = [spec.name for spec in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"run_many() application names must be unique; repeated: {repeated}")
    _ensure_started()
    _call(DeployApps(specs))
    if wait_for_applications_running:
        _call(WaitApps(names, DEPLOY_TIMEOUT_S), timeout_s=DEPLOY_TIMEOUT_S + 10)
    handles = [DeploymentHandle(spec.ingress, spec.name) for spec in specs]
    if blocking:
        _block_until_interrupted()
    return handles


def _run_canary(
    target: Application, name: str, config: CanaryConfig, import_path: str
) -> DeploymentHandle:
    running = _call(GetStatus())["applications"]
    if name not in running:
        raise NotFoundError(f"application {name!r} is not running: deploy it before a canary")
    spec = build_app_spec(target, canary_app_name(name), None)
    spec.import_path = import_path
    _call(DeployApps([spec]))
    _call(WaitApps([spec.name], DEPLOY_TIMEOUT_S), timeout_s=DEPLOY_TIMEOUT_S + 10)
    _call(SetCanary(name, spec.name, config.model_dump()))
    return DeploymentHandle(spec.ingress, spec.name)


def update_user_config(app: str, deployment: str, user_config: Any) -> None:
    """Give a running deployment a new ``user_config``: its replicas ``reconfigure()``
    in place, without a restart. Returns when every replica has it."""
    _ensure_connected()
    _call(SetUserConfig(app, deployment, user_config))


async def update_user_config_async(app: str, deployment: str, user_config: Any) -> None:
    """:func:`update_user_config` for async code (inside a replica, for example)."""
    ctx = _process.current()
    if ctx.on_loop():
        await ctx.controller.call(SetUserConfig(app, deployment, user_config), timeout_s=120)
    else:
        await asyncio.wrap_future(
            ctx.submit(
                ctx.controller.call(SetUserConfig(app, deployment, user_config), timeout_s=120)
            )
        )


def model_stats(app: str, deployment: str | None = None) -> dict[str, Any]:
    """Model-store statistics of every replica of ``app``'s deployments that serve
    multiplexed models (of ``deployment`` only, when given), keyed ``deployment/replica``.

    Each value holds ``hot`` (this replica's memory, all caches summed), ``warm`` and
    ``cold`` tier counters (hits, misses, loads, load_time_s, evictions, bytes_used, ...)
    and ``caches`` (each ``@serval.multiplexed`` cache on its own)::

        stats = serval.api.model_stats("many_models", "shared")
        cold_starts = sum(s["hot"]["loads"] for s in stats.values())
    """
    _ensure_connected()
    apps = _call(GetStatus())["applications"]
    if app not in apps:
        raise NotFoundError(f"application {app!r} does not exist")
    names = [deployment] if deployment else list(apps[app]["deployments"])
    out: dict[str, Any] = {}
    for name in names:
        try:
            replies = _call(ModelAdmin(app, name, "stats", []))
        except ServalError:
            continue
        for replica, stats in replies.items():
            if isinstance(stats, dict) and "error" not in stats:
                out[f"{name}/{replica}"] = stats
    return out


def promote(name: str) -> None:
    """The canary of ``name`` replaces it (a rolling update: no request fails)."""
    _ensure_connected()
    _call(EndCanary(name, promote=True))
    _call(WaitApps([name], DEPLOY_TIMEOUT_S), timeout_s=DEPLOY_TIMEOUT_S + 10)


def rollback(name: str) -> None:
    """Remove the canary of ``name``; the stable version serves all traffic again."""
    _ensure_connected()
    _call(EndCanary(name, promote=False))


def _block_until_interrupted() -> None:
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        logger.info("got Ctrl-C: shutting down")
        shutdown()


def _call_status_raw() -> dict[str, Any]:
    _ensure_connected()
    raw: dict[str, Any] = _call(GetStatus())
    return raw


def _call_list_raw() -> list[dict[str, Any]]:
    _ensure_connected()
    raw: list[dict[str, Any]] = _call(ListDeployments())
    return raw


def status() -> ServeStatus:
    """The state of every application, deployment and proxy."""
    _ensure_connected()
    return ServeStatus.from_wire(_call(GetStatus()))


def _ensure_connected() -> None:
    if not _process.is_connected():
        _driver.connect()


def delete(name: str, _blocking: bool = True) -> None:
    """Delete an application and its replicas."""
    _ensure_connected()
    _call(DeleteApps([name], _blocking))


def shutdown() -> None:
    """Delete every application and stop serval's processes."""
    if not _process.is_connected():
        try:
            _driver.connect()
        except Exception:
            # No controller to ask: stop a supervisor that gave up restarting it.
            _driver.stop_supervisor()
            _driver.wait_started_exit()
            return
    try:
        _call(Shutdown(), timeout_s=120)
    except ControllerError:
        # Already stopping: a terminal's Ctrl-C reaches the controller too (its own
        # SIGINT handler stops it), and it may close the connection before answering.
        logger.debug("the controller went away during shutdown", exc_info=True)
    finally:
        _process.reset()
        _driver.wait_started_exit()
        _driver.stop_supervisor()


async def shutdown_async() -> None:
    """:func:`shutdown` for async code (Ray Serve's ``serve.shutdown_async``)."""
    await asyncio.to_thread(shutdown)


def get_app_handle(name: str) -> DeploymentHandle:
    """A handle to the ingress deployment of application ``name``."""
    _ensure_connected()
    apps = _call(GetStatus())["applications"]
    if name not in apps:
        raise NotFoundError(f"application {name!r} does not exist; running: {sorted(apps)}")
    return DeploymentHandle(apps[name]["ingress"], name)


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> DeploymentHandle:
    """A handle to a deployment; ``app_name`` defaults to the caller's own application
    inside a replica, else to the one application that has such a deployment."""
    if app_name is None:
        try:
            app_name = get_replica_context().app_name
        except RuntimeError:
            pass
    _ensure_connected()
    apps = _call(GetStatus())["applications"]
    if app_name is None:
        owners = [a for a, info in apps.items() if deployment_name in info["deployments"]]
        if len(owners) != 1:
            raise NotFoundError(
                f"deployment {deployment_name!r} "
                + (
                    f"exists in several applications {owners}: pass app_name"
                    if owners
                    else "does not exist"
                )
            )
        app_name = owners[0]
    if app_name not in apps or deployment_name not in apps[app_name]["deployments"]:
        raise NotFoundError(
            f"deployment {deployment_name!r} does not exist in application {app_name!r}"
        )
    return DeploymentHandle(deployment_name, app_name)


def list_deployments() -> dict[str, Deployment]:
    """Every deployment that is running, by name (the older Ray Serve API)."""
    _ensure_connected()
    out: dict[str, Deployment] = {}
    from serval.config import DeploymentConfig

    for d in _call(ListDeployments()):
        config = DeploymentConfig.model_validate(d["config"])
        out[d["name"]] = Deployment(
            None, d["name"], config, d["route_prefix"], _serialized_def=d["serialized_def"]
        )
    return out
