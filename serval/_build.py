"""An Application graph → the AppSpec the controller deploys.

Every Application reachable through constructor arguments (also inside lists,
tuples and dicts) becomes a deployment of the same app, and in the arguments it is
replaced by a DeploymentHandle to it. Names repeat-proofed as ``name_1``, ``name_2``.
"""

from __future__ import annotations

import copyreg
import hashlib
import json
import os
import re
import sys
from typing import Any

import cloudpickle
from starlette.datastructures import State

from serval import _code_pickle
from serval.deployment import Application
from serval.handle import DeploymentHandle
from serval.transport.messages import AppSpec, DeploymentSpec

# cloudpickle tags each class it pickles by value with a random uuid (so a process
# unpickles one class once); it changes from process to process but is not code, so
# it stays out of the code hash that decides whether replicas restart.
_TRACKER_ID = re.compile(rb"\x8c\x20[0-9a-f]{32}")


def _reduce_state(state: State) -> tuple[type[State], tuple[dict[str, Any]]]:
    return (State, (dict(state._state),))


# Starlette's State answers every attribute lookup from its dict, which sends
# unpickling into endless recursion; FastAPI apps (``@serval.ingress``) carry one.
copyreg.pickle(State, _reduce_state)


def build_app_spec(root: Application, name: str, route_prefix: str | None) -> AppSpec:
    names: dict[int, str] = {}
    specs: list[DeploymentSpec] = []
    taken: set[str] = set()

    def visit(app: Application) -> str:
        if id(app) in names:
            return names[id(app)]
        base = app.deployment.name
        dname, i = base, 0
        while dname in taken:
            i += 1
            dname = f"{base}_{i}"
        taken.add(dname)
        names[id(app)] = dname
        args = _replace(app.args, visit, name)
        kwargs = _replace(app.kwargs, visit, name)
        specs.append(_spec(app, dname, args, kwargs))
        return dname

    ingress = visit(root)
    return AppSpec(
        name=name,
        route_prefix=route_prefix,
        ingress=ingress,
        deployments=specs,
        sys_path=[p for p in sys.path if p],
        cwd=os.getcwd(),
    )


def _replace(value: Any, visit: Any, app_name: str) -> Any:
    if isinstance(value, Application):
        return DeploymentHandle(visit(value), app_name)
    if isinstance(value, tuple):
        return tuple(_replace(v, visit, app_name) for v in value)
    if isinstance(value, list):
        return [_replace(v, visit, app_name) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, visit, app_name) for k, v in value.items()}
    return value


def _spec(app: Application, name: str, args: Any, kwargs: Any) -> DeploymentSpec:
    dep = app.deployment
    serialized = dep._serialized_def or _code_pickle.dumps(dep.func_or_class)
    payload = cloudpickle.dumps((args, kwargs), protocol=5)
    config = dep.config.model_dump(mode="json")
    digest = hashlib.sha256()
    if dep.version is not None:
        digest.update(dep.version.encode())
    else:
        digest.update(_TRACKER_ID.sub(b"", serialized))
        digest.update(_TRACKER_ID.sub(b"", payload))
    digest.update(json.dumps(config.get("ray_actor_options"), sort_keys=True).encode())
    return DeploymentSpec(
        name=name,
        serialized_def=serialized,
        init_payload=payload,
        config=config,
        code_hash=digest.hexdigest()[:16],
        is_function=not isinstance(dep.func_or_class, type),
        request_router=_request_router(app),
    )


def _request_router(app: Application) -> bytes:
    """The deployment's own request router class, pickled by value (with its module,
    as Ray Serve does) so the proxy and other callers need not import the user's code;
    serval's own classes travel by reference. b"" for serval's router."""
    cfg = app.deployment.config.request_router_config
    if cfg is None or cfg.is_default:
        return b""
    cls = cfg.load()
    module = sys.modules.get(cls.__module__)
    by_value = (
        module is not None
        and cls.__module__ != "__main__"  # cloudpickle ships __main__ by value anyway
        and cls.__module__.partition(".")[0] != "serval"
        and cls.__module__ not in cloudpickle.list_registry_pickle_by_value()
    )
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return _code_pickle.dumps(cls)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
