"""Option groups: small validated objects with a readable repr.

Every option is checked when it is given (at decoration, ``.options()``, ``serval.start``
or deploy time), and a bad one raises :class:`~serval.exceptions.ConfigError` (a
``ValueError``) naming the option, the value and what is allowed. Names and defaults
follow Ray Serve's.

Example::

    AutoscalingConfig(min_replicas=1, max_replicas=4, target_ongoing_requests=2)
    HTTPOptions(host="0.0.0.0", port=8000, request_timeout_s=30)
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from serval.exceptions import ConfigError

__all__ = [
    "AutoscalingConfig",
    "BackpressureConfig",
    "DeploymentConfig",
    "GRPCOptions",
    "HTTPOptions",
    "LoggingConfig",
    "RequestRouterConfig",
    "validated",
]

M = TypeVar("M", bound=BaseModel)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def __repr__(self) -> str:
        fields = self.model_dump(exclude_defaults=True)
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({inner})"

    __str__ = __repr__


def validated(cls: type[M], values: dict[str, Any] | M | None, where: str) -> M:
    """Build ``cls`` from ``values``; turn pydantic's error into a ConfigError."""
    if isinstance(values, cls):
        return values
    try:
        return cls.model_validate(values or {})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)) from None


def _describe(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        option = ".".join(str(p) for p in err["loc"]) or "(value)"
        value = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown option"
        lines.append(f"invalid {where} option {option!r} = {value!r}: {msg}")
    return "; ".join(lines)


class AutoscalingConfig(_Options):
    """When and how far to scale a deployment (Ray Serve's names and defaults)."""

    min_replicas: int = Field(1, ge=0)
    initial_replicas: int | None = Field(None, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(2.0, gt=0)
    metrics_interval_s: float = Field(10.0, gt=0)
    look_back_period_s: float = Field(30.0, gt=0)
    smoothing_factor: float = Field(1.0, gt=0)
    upscale_smoothing_factor: float | None = Field(None, gt=0)
    downscale_smoothing_factor: float | None = Field(None, gt=0)
    upscaling_factor: float | None = Field(None, gt=0)
    downscaling_factor: float | None = Field(None, gt=0)
    downscale_delay_s: float = Field(600.0, ge=0)
    upscale_delay_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})"
            )
        if self.initial_replicas is not None and not (
            self.min_replicas <= self.initial_replicas <= self.max_replicas
        ):
            raise ValueError(
                f"initial_replicas ({self.initial_replicas}) must be between min_replicas "
                f"({self.min_replicas}) and max_replicas ({self.max_replicas})"
            )
        return self


# The attributes every logging.LogRecord has (what additional_log_standard_attrs may name).
_LOG_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "asctime",
    "message",
}


class LoggingConfig(_Options):
    """How a deployment's replicas (or, given to ``serval.start``, the controller and
    proxies) log — Ray Serve's ``LoggingConfig``, with its names and defaults.

    ``enable_access_log``: one line per request in the replica's log (method, path,
    status, latency, request id, application, replica, model id). ``encoding``: ``TEXT``
    or ``JSON`` (one object per line). ``logs_dir``: where the log files go (default: the
    instance's ``logs/``). ``additional_log_standard_attrs``: LogRecord attributes added
    to every line (``name``, ``funcName``, ``lineno``, ...)::

        @serval.deployment(logging_config={"encoding": "JSON", "log_level": "DEBUG"})
        class Model: ...
    """

    encoding: Literal["TEXT", "JSON"] = "TEXT"
    log_level: int | str = "INFO"
    logs_dir: str | None = None
    enable_access_log: bool = True
    additional_log_standard_attrs: list[str] = Field(default_factory=list)

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, v: Any) -> Any:
        return "TEXT" if v is None else (v.upper() if isinstance(v, str) else v)

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if logging.getLevelName(v).startswith("Level "):
                raise ValueError("must be a logging level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
            return v
        name = v.upper()
        if not isinstance(logging.getLevelName(name), int):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return name

    @field_validator("additional_log_standard_attrs")
    @classmethod
    def _attrs(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - _LOG_RECORD_ATTRS)
        if unknown:
            raise ValueError(
                f"unknown LogRecord attribute(s) {unknown}; allowed: {sorted(_LOG_RECORD_ATTRS)}"
            )
        return v

    def level_number(self) -> int:
        if isinstance(self.log_level, int):
            return self.log_level
        level: int = logging.getLevelName(self.log_level)
        return level


_RAY_ACTOR_OPTION_KEYS = {
    "num_cpus",
    "num_gpus",
    "memory",
    "object_store_memory",
    "resources",
    "accelerator_type",
    "runtime_env",
    "label_selector",
}


_PG_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class BackpressureConfig(_Options):
    """How a deployment at capacity answers (Ray Serve's ``backpressure_config``).

    Example::

        @serval.deployment(max_queued_requests=10,
                           backpressure_config={"status_code": 429, "retry_after_s": 2})
    """

    status_code: Literal[503, 429] = 503
    retry_after_s: float | None = Field(None, ge=0)


DEFAULT_REQUEST_ROUTER = "serval.request_router:PowerOfTwoChoicesRequestRouter"
# Ray Serve's name for its default router (what `serve build` writes): serval's own here.
_DEFAULT_ROUTER_PATHS = {
    DEFAULT_REQUEST_ROUTER,
    "serval.request_router.base:PowerOfTwoChoicesRequestRouter",
    "ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter",
    "ray.serve._private.request_router.pow_2_router:PowerOfTwoChoicesRequestRouter",
}


def _import_path(path: str) -> str:
    """``module:Class`` for ``module:Class`` or ``module.Class``."""
    if ":" in path:
        return path
    module, _, attr = path.rpartition(".")
    return f"{module}:{attr}"


class RequestRouterConfig(_Options):
    """Which request router picks a deployment's replicas (Ray Serve's
    ``RequestRouterConfig``, same names and defaults).

    ``request_router_class`` is a :class:`serval.request_router.RequestRouter` subclass
    or its import path (``"module:Class"`` or ``"module.Class"``);
    ``request_router_kwargs`` go to its ``initialize_state()``; every
    ``request_routing_stats_period_s`` the controller calls the deployment's
    ``record_routing_stats()`` (if it has one; at most ``request_routing_stats_timeout_s``)
    and routers see the dict as ``RunningReplica.routing_stats``::

        @serval.deployment(request_router_config=RequestRouterConfig(
            request_router_class="my_routers:ThroughputAware",
            request_router_kwargs={"window_s": 1},
            request_routing_stats_period_s=1))
        class Model: ...

    The default is serval's own router (power of two choices, model-aware).
    """

    request_router_class: str = DEFAULT_REQUEST_ROUTER
    request_router_kwargs: dict[str, Any] = Field(default_factory=dict)
    request_routing_stats_period_s: float = Field(10.0, gt=0)
    request_routing_stats_timeout_s: float = Field(30.0, gt=0)
    _router_class: type | None = PrivateAttr(None)  # when given as a class, not a path

    @model_validator(mode="wrap")
    @classmethod
    def _keep_class(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A class given as ``request_router_class`` is stored as its import path (what
        config files and the controller see) and kept, to be pickled by value."""
        given = data.get("request_router_class") if isinstance(data, dict) else None
        model = handler(data)
        if isinstance(given, type):
            model._router_class = given
        return model

    @field_validator("request_router_class", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        if isinstance(v, type):
            if not _is_router_class(v):
                raise ValueError(f"{v!r} is not a subclass of serval.request_router.RequestRouter")
            return f"{v.__module__}:{v.__qualname__}"
        if isinstance(v, str):
            module, _, attr = v.partition(":") if ":" in v else v.rpartition(".")
            if not module or not attr:
                raise ValueError("must be a RequestRouter subclass or its path 'module:Class'")
        return v

    @field_validator("request_router_kwargs")
    @classmethod
    def _json_kwargs(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(v)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be JSON-serializable ({exc})") from None
        return v

    @property
    def is_default(self) -> bool:
        """True when serval's own router is meant (no user router to load)."""
        return _import_path(self.request_router_class) in _DEFAULT_ROUTER_PATHS

    def load(self) -> type:
        """Import the router class (in the driver, at decoration or deploy time) and check
        it; a ConfigError names the option when it does not import or is no router."""
        if self._router_class is not None:
            return self._router_class
        from serval._import import import_attr

        try:
            value = import_attr(_import_path(self.request_router_class))
        except ConfigError as exc:
            raise ConfigError(
                f"invalid deployment option 'request_router_config.request_router_class' = "
                f"{self.request_router_class!r}: {exc}"
            ) from None
        if not _is_router_class(value):
            raise ConfigError(
                f"invalid deployment option 'request_router_config.request_router_class' = "
                f"{self.request_router_class!r}: {value!r} is not a subclass of "
                "serval.request_router.RequestRouter"
            )
        assert isinstance(value, type)
        return value


def _is_router_class(value: Any) -> bool:
    from serval.request_router import RequestRouter

    return isinstance(value, type) and issubclass(value, RequestRouter)


class DeploymentConfig(_Options):
    """Everything ``@serval.deployment(...)`` and ``.options(...)`` accept."""

    num_replicas: int | Literal["auto"] = 1
    max_ongoing_requests: int = Field(5, ge=1)
    max_queued_requests: int = Field(-1, ge=-1)
    user_config: Any = None
    health_check_period_s: float = Field(10.0, gt=0)
    health_check_timeout_s: float = Field(30.0, gt=0)
    graceful_shutdown_timeout_s: float = Field(20.0, ge=0)
    graceful_shutdown_wait_loop_s: float = Field(2.0, ge=0)
    autoscaling_config: AutoscalingConfig | None = None
    ray_actor_options: dict[str, Any] | None = None
    placement_group_bundles: list[dict[str, float]] | None = None
    placement_group_strategy: str | None = None
    max_replicas_per_node: int | None = Field(None, ge=1)
    logging_config: LoggingConfig | None = None
    version: str | None = None
    backpressure_config: BackpressureConfig | None = None
    # A deployment whose replicas fail to start this many times (at most 3 per target
    # replica, as Ray Serve counts) is DEPLOY_FAILED.
    max_constructor_retry_count: int = Field(20, ge=1)
    # Rollouts: the share of the target replaced at a time, and how many extra replicas
    # (percent of the target) may run meanwhile. Unset: serval's zero-downtime default
    # (one replica or 20% extra, old ones stop as new ones are ready). 0% surge: old
    # replicas stop before their replacements start, as Ray Serve's default does.
    rolling_update_percentage: float | None = Field(None, gt=0, le=1)
    max_surge_percent: int | None = Field(None, ge=0, le=100)
    request_router_config: RequestRouterConfig | None = None

    @field_validator("num_replicas")
    @classmethod
    def _num_replicas(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("must be an int >= 0 or 'auto'")
        return v

    @field_validator("user_config")
    @classmethod
    def _json_user_config(cls, v: Any) -> Any:
        if v is not None:
            try:
                json.dumps(v)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"must be JSON-serializable ({exc})") from None
        return v

    @field_validator("ray_actor_options")
    @classmethod
    def _actor_options(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        unknown = set(v) - _RAY_ACTOR_OPTION_KEYS
        if unknown:
            raise ValueError(
                f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_RAY_ACTOR_OPTION_KEYS)}"
            )
        for key in ("num_cpus", "num_gpus", "memory", "object_store_memory"):
            if key in v and (not isinstance(v[key], int | float) or v[key] < 0):
                raise ValueError(f"{key} must be a number >= 0, got {v[key]!r}")
        resources = v.get("resources", {})
        if not isinstance(resources, dict) or not all(
            isinstance(k, str) and isinstance(n, int | float) and n >= 0
            for k, n in resources.items()
        ):
            raise ValueError("resources must be a dict of name -> number >= 0")
        env = v.get("runtime_env", {})
        if not isinstance(env, dict):
            raise ValueError("runtime_env must be a dict")
        env_vars = env.get("env_vars", {})
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(x, str) for k, x in env_vars.items()
        ):
            raise ValueError("runtime_env.env_vars must be a dict of str -> str")
        return v

    @field_validator("placement_group_bundles")
    @classmethod
    def _bundles(cls, v: list[dict[str, float]] | None) -> list[dict[str, float]] | None:
        if v is None:
            return v
        if not v or any(not b or any(n < 0 for n in b.values()) for b in v):
            raise ValueError(
                "must be a non-empty list of non-empty bundles of resource -> amount >= 0, "
                'e.g. [{"CPU": 1}, {"CPU": 2}] (the replica runs in the first)'
            )
        return v

    @field_validator("placement_group_strategy")
    @classmethod
    def _strategy(cls, v: str | None) -> str | None:
        if v is not None and v not in _PG_STRATEGIES:
            raise ValueError(f"must be one of {list(_PG_STRATEGIES)}")
        return v

    @model_validator(mode="after")
    def _auto(self) -> DeploymentConfig:
        if self.num_replicas == "auto" and self.autoscaling_config is None:
            self.autoscaling_config = AutoscalingConfig(min_replicas=1, max_replicas=100)
        if (
            self.autoscaling_config is not None
            and isinstance(self.num_replicas, int)
            and ("num_replicas" in self.model_fields_set and self.num_replicas != 1)
        ):
            raise ValueError("num_replicas cannot be set together with autoscaling_config")
        return self

    def initial_replica_count(self) -> int:
        """How many replicas to start with."""
        asc = self.autoscaling_config
        if asc is None:
            assert isinstance(self.num_replicas, int)
            return self.num_replicas
        return asc.initial_replicas if asc.initial_replicas is not None else asc.min_replicas

    def env_vars(self) -> dict[str, str]:
        env = (self.ray_actor_options or {}).get("runtime_env", {}) or {}
        return dict(env.get("env_vars", {}) or {})


class GRPCOptions(_Options):
    """The proxy's gRPC ingress (Ray Serve's ``grpc_options``; see
    :mod:`serval.proxy.grpc_ingress`).

    Example::

        serval.start(grpc_options={
            "port": 9000,
            "grpc_servicer_functions": ["pb2_grpc:add_XServicer_to_server"],
        })
    """

    port: int = Field(9000, ge=0, le=65535)
    grpc_servicer_functions: list[str] = Field(default_factory=list)
    request_timeout_s: float | None = Field(None, gt=0)
    enable_reflection: bool = True

    @field_validator("grpc_servicer_functions")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for path in v:
            module, sep, attr = path.partition(":")
            if not (module and sep and attr):
                raise ValueError(f"{path!r} is not 'module:add_XServicer_to_server'")
        return v


class HTTPOptions(_Options):
    """Where and how the HTTP proxy listens (and its gRPC ingress, when given)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    root_path: str = ""
    request_timeout_s: float | None = Field(None, gt=0)
    keep_alive_timeout_s: float = Field(5.0, gt=0)
    max_request_body_bytes: int = Field(100 * 1024 * 1024, ge=1)
    location: Literal["HeadOnly", "EveryNode", "NoServer"] = "HeadOnly"
    num_proxies: int = Field(1, ge=1)
    admin_token: str | None = Field(None, min_length=8, repr=False)
    grpc_options: GRPCOptions | None = None
