"""``@serval.ingress(app)``: a class deployment that serves HTTP through an ASGI app.

Example::

    app = FastAPI()

    @serval.deployment
    @serval.ingress(app)
    class Api:
        @app.get("/hello")
        def hello(self, name: str) -> str:
            return f"Hello {name}"

Route functions defined in the class are bound to the replica's instance, so
``self`` works in them; FastAPI sees the bound methods (without ``self``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from serval.exceptions import ConfigError

__all__ = ["ingress"]


def ingress(app: Any) -> Callable[[type], type]:
    """Serve a class deployment's HTTP traffic through ``app`` (FastAPI or any ASGI app);
    see the module docstring for an example."""
    if not callable(app):
        raise ConfigError(f"@serval.ingress takes an ASGI app (FastAPI, Starlette), got {app!r}")

    def decorate(cls: type) -> type:
        if not isinstance(cls, type):
            raise ConfigError("@serval.ingress(app) must decorate a class")
        cls.__serval_asgi_app__ = app  # type: ignore[attr-defined]
        _resolve_annotations(cls)
        return cls

    return decorate


def _resolve_annotations(cls: type) -> None:
    """Evaluate string annotations (``from __future__ import annotations``) now, while
    the defining module's globals are at hand: the replica rebuilds the routes from
    the methods, and a function pickled by value no longer sees those globals."""
    for fn in vars(cls).values():
        if inspect.isfunction(fn):
            try:
                fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)
            except Exception:  # leave unresolvable annotations to FastAPI's own error
                pass


def bind_asgi_app(app: Any, cls: type, instance: Any) -> Any:
    """Point the app's routes that are methods of ``cls`` at ``instance``'s bound methods."""
    try:
        from fastapi.routing import APIRoute, APIWebSocketRoute
    except ImportError:  # a plain Starlette/ASGI app: nothing to bind
        return app
    methods = {
        id(fn): name for klass in cls.__mro__ for name, fn in vars(klass).items() if callable(fn)
    }
    routes = getattr(getattr(app, "router", None), "routes", None)
    if routes is None:
        return app
    for i, route in enumerate(routes):
        if isinstance(route, APIWebSocketRoute) and id(route.endpoint) in methods:
            routes[i] = APIWebSocketRoute(
                route.path,
                getattr(instance, methods[id(route.endpoint)]),
                name=route.name,
                dependencies=route.dependencies,
            )
        elif isinstance(route, APIRoute) and id(route.endpoint) in methods:
            bound = getattr(instance, methods[id(route.endpoint)])
            routes[i] = APIRoute(
                route.path,
                bound,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=route.tags,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=route.responses,
                deprecated=route.deprecated,
                methods=route.methods,
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                generate_unique_id_function=route.generate_unique_id_function,
            )
    if hasattr(app, "openapi_schema"):
        app.openapi_schema = None
    return app
