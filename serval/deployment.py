"""``@serval.deployment``, ``Deployment`` and ``Application`` (what ``.bind()`` returns).

Example::

    @serval.deployment(num_replicas=2, user_config={"weight": 0.5})
    class Model:
        def __init__(self, bias: float):
            self.bias = bias
        def reconfigure(self, config: dict):
            self.weight = config["weight"]
        async def __call__(self, request):
            return {"prediction": float(request.query_params["x"]) * self.weight + self.bias}

    handle = serval.run(Model.bind(1.0), route_prefix="/model")
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from typing import Any, overload

from serval.config import DeploymentConfig, validated
from serval.exceptions import ConfigError

__all__ = ["Application", "Deployment", "deployment"]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


class Application:
    """A deployment bound to its constructor arguments; other Applications among the
    arguments become handles in the replica. Pass it to ``serval.run``."""

    def __init__(self, deployment: Deployment, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.deployment = deployment
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Application({self.deployment.name})"


class Deployment:
    """A function or class with its serving options. Build one with ``@serval.deployment``."""

    def __init__(
        self,
        func_or_class: Any,
        name: str,
        config: DeploymentConfig,
        route_prefix: str | None = None,
        *,
        _given: frozenset[str] = frozenset(),
        _serialized_def: bytes | None = None,
    ) -> None:
        self._func_or_class = func_or_class
        self._serialized_def = _serialized_def
        self._name = name
        self._config = config
        self._route_prefix = route_prefix
        self._given = _given

    # -- properties (Ray Serve's names) -----------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def func_or_class(self) -> Any:
        if self._func_or_class is None and self._serialized_def is not None:
            self._func_or_class = pickle.loads(self._serialized_def)
        return self._func_or_class

    @property
    def config(self) -> DeploymentConfig:
        return self._config

    @property
    def version(self) -> str | None:
        return self._config.version

    @property
    def num_replicas(self) -> int | str:
        return self._config.num_replicas

    @property
    def user_config(self) -> Any:
        return self._config.user_config

    @property
    def max_ongoing_requests(self) -> int:
        return self._config.max_ongoing_requests

    @property
    def max_queued_requests(self) -> int:
        return self._config.max_queued_requests

    @property
    def route_prefix(self) -> str | None:
        return self._route_prefix

    @property
    def ray_actor_options(self) -> dict[str, Any] | None:
        return self._config.ray_actor_options

    # -- building -----------------------------------------------------------------------

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """Bind constructor arguments; returns an Application for ``serval.run``."""
        return Application(self, args, kwargs)

    def options(
        self,
        *,
        func_or_class: Any = UNSET,
        name: Any = UNSET,
        route_prefix: Any = UNSET,
        **options: Any,
    ) -> Deployment:
        """A copy with some options changed (the others keep their values)."""
        given = {k: v for k, v in options.items() if v is not UNSET}
        merged = {**self._config.model_dump(include=set(self._given)), **given}
        if "request_router_config" in self._given and "request_router_config" not in given:
            # the object itself: it may hold the router class (dumped, only its path)
            merged["request_router_config"] = self._config.request_router_config
        config = _checked(validated(DeploymentConfig, merged, "deployment"))
        return Deployment(
            self._func_or_class if func_or_class is UNSET else func_or_class,
            self._name if name is UNSET else name,
            config,
            self._route_prefix if route_prefix is UNSET else route_prefix,
            _given=self._given | frozenset(given),
            _serialized_def=self._serialized_def if func_or_class is UNSET else None,
        )

    # -- the older API the Ray Serve tutorials still teach ------------------------------

    def deploy(self, *init_args: Any, **init_kwargs: Any) -> None:
        """Deploy on its own, served at ``route_prefix`` or ``/<name>``."""
        from serval import api

        api.run(
            self.bind(*init_args, **init_kwargs),
            name=self._name,
            route_prefix=self._route_prefix or f"/{self._name}",
        )

    def delete(self) -> None:
        """Delete the application that ``deploy()`` created."""
        from serval import api

        api.delete(self._name)

    def get_handle(self) -> Any:
        from serval.handle import DeploymentHandle

        return DeploymentHandle(self._name, self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"deployment {self._name!r} cannot be called directly: use "
            f"{self._name}.bind(...) and serval.run(), then call the handle"
        )

    def __repr__(self) -> str:
        return (
            f"Deployment(name={self._name},version={self.version},"
            f"route_prefix={self._route_prefix})"
        )


def _checked(config: DeploymentConfig) -> DeploymentConfig:
    """Import a user's request router now, so a bad path fails here, naming the option."""
    router = config.request_router_config
    if router is not None and not router.is_default:
        router.load()
    return config


@overload
def deployment(_func_or_class: Callable[..., Any]) -> Deployment: ...


@overload
def deployment(
    _func_or_class: None = None,
    *,
    name: Any = ...,
    route_prefix: Any = ...,
    num_replicas: Any = ...,
    max_ongoing_requests: Any = ...,
    max_queued_requests: Any = ...,
    user_config: Any = ...,
    health_check_period_s: Any = ...,
    health_check_timeout_s: Any = ...,
    graceful_shutdown_timeout_s: Any = ...,
    graceful_shutdown_wait_loop_s: Any = ...,
    autoscaling_config: Any = ...,
    ray_actor_options: Any = ...,
    placement_group_bundles: Any = ...,
    placement_group_strategy: Any = ...,
    max_replicas_per_node: Any = ...,
    logging_config: Any = ...,
    version: Any = ...,
    max_concurrent_queries: Any = ...,
    backpressure_config: Any = ...,
    max_constructor_retry_count: Any = ...,
    rolling_update_percentage: Any = ...,
    max_surge_percent: Any = ...,
    request_router_config: Any = ...,
) -> Callable[[Callable[..., Any]], Deployment]: ...


def deployment(
    _func_or_class: Callable[..., Any] | None = None,
    *,
    name: Any = UNSET,
    route_prefix: Any = UNSET,
    num_replicas: Any = UNSET,
    max_ongoing_requests: Any = UNSET,
    max_queued_requests: Any = UNSET,
    user_config: Any = UNSET,
    health_check_period_s: Any = UNSET,
    health_check_timeout_s: Any = UNSET,
    graceful_shutdown_timeout_s: Any = UNSET,
    graceful_shutdown_wait_loop_s: Any = UNSET,
    autoscaling_config: Any = UNSET,
    ray_actor_options: Any = UNSET,
    placement_group_bundles: Any = UNSET,
    placement_group_strategy: Any = UNSET,
    max_replicas_per_node: Any = UNSET,
    logging_config: Any = UNSET,
    version: Any = UNSET,
    max_concurrent_queries: Any = UNSET,
    backpressure_config: Any = UNSET,
    max_constructor_retry_count: Any = UNSET,
    rolling_update_percentage: Any = UNSET,
    max_surge_percent: Any = UNSET,
    request_router_config: Any = UNSET,
) -> Deployment | Callable[[Callable[..., Any]], Deployment]:
    """Turn a function or class into a deployment (Ray Serve's decorator and options).

    Example::

        @serval.deployment
        def hello(request):
            return f"Hello {request.query_params['name']}!"

        @serval.deployment(num_replicas=2, max_ongoing_requests=16)
        class Model: ...

    Invalid options raise ``ConfigError`` (a ``ValueError``) here, naming the option.
    """
    if max_concurrent_queries is not UNSET:  # Ray Serve's older name
        if max_ongoing_requests is not UNSET:
            raise ConfigError("give max_ongoing_requests or max_concurrent_queries, not both")
        max_ongoing_requests = max_concurrent_queries
    options = {
        "num_replicas": num_replicas,
        "max_ongoing_requests": max_ongoing_requests,
        "max_queued_requests": max_queued_requests,
        "user_config": user_config,
        "health_check_period_s": health_check_period_s,
        "health_check_timeout_s": health_check_timeout_s,
        "graceful_shutdown_timeout_s": graceful_shutdown_timeout_s,
        "graceful_shutdown_wait_loop_s": graceful_shutdown_wait_loop_s,
        "autoscaling_config": autoscaling_config,
        "ray_actor_options": ray_actor_options,
        "placement_group_bundles": placement_group_bundles,
        "placement_group_strategy": placement_group_strategy,
        "max_replicas_per_node": max_replicas_per_node,
        "logging_config": logging_config,
        "version": version,
        "backpressure_config": backpressure_config,
        "max_constructor_retry_count": max_constructor_retry_count,
        "rolling_update_percentage": rolling_update_percentage,
        "max_surge_percent": max_surge_percent,
        "request_router_config": request_router_config,
    }
    given = {k: v for k, v in options.items() if v is not UNSET}
    if given.get("num_replicas") is None and "num_replicas" in given:
        del given["num_replicas"]
    config = _checked(validated(DeploymentConfig, given, "deployment"))
    if name is not UNSET and (not isinstance(name, str) or not name or "/" in name or "#" in name):
        raise ConfigError(
            f"invalid deployment option 'name' = {name!r}: must be a non-empty "
            "string without '/' or '#'"
        )
    if (
        route_prefix is not UNSET
        and route_prefix is not None
        and (not isinstance(route_prefix, str) or not route_prefix.startswith("/"))
    ):
        raise ConfigError(
            f"invalid deployment option 'route_prefix' = {route_prefix!r}: "
            "must be a string starting with '/'"
        )

    def decorate(target: Callable[..., Any]) -> Deployment:
        if not (inspect.isfunction(target) or inspect.isclass(target)):
            raise ConfigError(
                f"@serval.deployment must decorate a function or a class, got {target!r}"
            )
        if (
            inspect.isclass(target)
            and "user_config" in given
            and not hasattr(target, "reconfigure")
        ):
            raise ConfigError(
                f"deployment option 'user_config' is set but class {target.__name__} "
                "has no reconfigure(self, config) method"
            )
        return Deployment(
            target,
            target.__name__ if name is UNSET else name,
            config,
            None if route_prefix is UNSET else route_prefix,
            _given=frozenset(given),
        )

    if _func_or_class is not None:
        return decorate(_func_or_class)
    return decorate
