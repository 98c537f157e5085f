"""``serval build`` and ``serval deploy file.yaml``: between config files and running apps."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from serval import api
from serval._import import load_application
from serval.deployment import Application, Deployment
from serval.exceptions import ConfigError
from serval.schema import ApplicationSchema, DeploymentSchema, ServeConfig, notices

_OPTION_FIELDS = set(DeploymentSchema.model_fields) - {"name"}


def _walk(app: Application) -> list[Application]:
    seen: dict[int, Application] = {}

    def visit(value: Any) -> None:
        if isinstance(value, Application):
            if id(value) in seen:
                return
            seen[id(value)] = value
            for arg in (*value.args, *value.kwargs.values()):
                visit(arg)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    visit(app)
    return list(seen.values())


def build_config(target: str, name: str, route_prefix: str | None) -> ServeConfig:
    """The config of the application ``target``, with every deployment's options."""
    app = load_application(target)
    deployments = []
    for node in _walk(app):
        dep = node.deployment
        options = dep.config.model_dump(mode="json", include=_OPTION_FIELDS)
        deployments.append(DeploymentSchema.model_validate({"name": dep.name, **options}))
    return ServeConfig(
        applications=[
            ApplicationSchema(
                name=name, route_prefix=route_prefix, import_path=target, deployments=deployments
            )
        ]
    )


def _deployment_overrides(
    dep_name: str, current: Any, schema: ApplicationSchema, config: ServeConfig
) -> dict[str, Any]:
    """What the file changes in one deployment: its own entry, plus the application's
    ``runtime_env.env_vars`` and the nearest ``logging_config`` (deployment, then
    application, then the file's top level)."""
    entry = next((d for d in schema.deployments if d.name == dep_name), None)
    out = entry.overrides() if entry is not None else {}
    env_vars = schema.runtime_env.get("env_vars") or {}
    if env_vars:
        actor = dict(out.get("ray_actor_options") or current.ray_actor_options or {})
        runtime_env = dict(actor.get("runtime_env") or {})
        runtime_env["env_vars"] = {**env_vars, **(runtime_env.get("env_vars") or {})}
        actor["runtime_env"] = runtime_env
        out["ray_actor_options"] = actor
    if "logging_config" not in out:
        inherited = schema.logging_config or config.logging_config
        if inherited is not None:
            out["logging_config"] = inherited.as_options()
    return out


def _with_overrides(
    app: Application, schema: ApplicationSchema, index: int, config: ServeConfig
) -> Application:
    names = {node.deployment.name for node in _walk(app)}
    overrides = {
        node.deployment.name: _deployment_overrides(
            node.deployment.name, node.deployment.config, schema, config
        )
        for node in _walk(app)
    }
    for j, d in enumerate(schema.deployments):
        if d.name not in names:
            raise ConfigError(
                f"applications[{index}].deployments[{j}].name: no deployment {d.name!r} in "
                f"{schema.import_path}; it has {sorted(names)}"
            )
    rebuilt: dict[int, Application] = {}

    def rebuild(value: Any) -> Any:
        if isinstance(value, Application):
            if id(value) not in rebuilt:
                dep = value.deployment
                if overrides.get(dep.name):
                    dep = _options(dep, overrides[dep.name], schema, index)
                rebuilt[id(value)] = dep.bind(*rebuild(value.args), **rebuild(value.kwargs))
            return rebuilt[id(value)]
        if isinstance(value, tuple):
            return tuple(rebuild(v) for v in value)
        if isinstance(value, list):
            return [rebuild(v) for v in value]
        if isinstance(value, dict):
            return {k: rebuild(v) for k, v in value.items()}
        return value

    result: Application = rebuild(app)
    return result


_BAD_OPTION = re.compile(r"invalid deployment option '([^']+)' = ")


def _options(
    dep: Deployment, overrides: dict[str, Any], schema: ApplicationSchema, index: int
) -> Deployment:
    """``dep.options(**overrides)``; an error names the option's YAML path (options that
    import code, such as a request router's class, are checked only here)."""
    try:
        return dep.options(**overrides)
    except ConfigError as exc:
        j = next((j for j, d in enumerate(schema.deployments) if d.name == dep.name), None)
        where = f"applications[{index}]" + (f".deployments[{j}]" if j is not None else "")
        raise ConfigError(_BAD_OPTION.sub(rf"{where}.\1: ", str(exc))) from None


@contextlib.contextmanager
def _working_dir(path: str | None) -> Iterator[None]:
    """Import from ``path`` and make it the replicas' working directory (it is captured
    into the app spec), as Ray's ``runtime_env.working_dir`` does."""
    if path is None:
        yield
        return
    before = os.getcwd()
    sys.path.insert(0, path)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
        with contextlib.suppress(ValueError):
            sys.path.remove(path)


def apply_config(config: ServeConfig) -> list[str]:
    """Deploy every application in ``config`` and delete the running ones it leaves out.

    Returns the notices: fields accepted for Ray Serve compatibility that change nothing
    here (the caller shows each once)."""
    found = notices(config)
    apps = []
    for i, schema in enumerate(config.applications):  # every app loads before any deploys
        with _working_dir(schema.local_working_dir()):
            try:
                app = load_application(
                    schema.import_path, {k: str(v) for k, v in schema.args.items()}
                )
            except ConfigError as exc:
                raise ConfigError(f"applications[{i}].import_path: {exc}") from None
            apps.append((schema, _with_overrides(app, schema, i, config)))
    for schema, app in apps:
        with _working_dir(schema.local_working_dir()):
            api.run(
                app,
                name=schema.name,
                route_prefix=schema.route_prefix,
                _import_path=schema.import_path,
            )
    wanted = {schema.name for schema in config.applications}
    for name in api.status().applications:
        if name not in wanted:
            api.delete(name)
    return found


def running_config() -> ServeConfig:
    """What is running now, as a config file (``serval config``)."""
    status = api._call_status_raw()
    apps = []
    for name, info in status["applications"].items():
        deployments = [
            DeploymentSchema.model_validate(
                {"name": d["name"], **{k: v for k, v in d["config"].items() if k in _OPTION_FIELDS}}
            )
            for d in api._call_list_raw()
            if d["app"] == name
        ]
        apps.append(
            ApplicationSchema(
                name=name,
                route_prefix=info["route_prefix"],
                import_path=info.get("import_path") or "<deployed from Python>",
                deployments=deployments,
            )
        )
    return ServeConfig(applications=apps)
