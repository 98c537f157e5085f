"""``serval build`` and ``serval deploy file.yaml``: between config files and running apps."""

from __future__ import annotations

from typing import Any

from serval import api
from serval._import import load_application
from serval.deployment import Application
from serval.exceptions import ConfigError
from serval.schema import ApplicationSchema, DeploymentSchema, ServeConfig

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


def _with_overrides(app: Application, schema: ApplicationSchema, index: int) -> Application:
    overrides = {d.name: d.overrides() for d in schema.deployments}
    names = {node.deployment.name for node in _walk(app)}
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
                    dep = dep.options(**overrides[dep.name])
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


def apply_config(config: ServeConfig) -> None:
    """Deploy every application in ``config`` and delete the running ones it leaves out."""
    apps = []
    for i, schema in enumerate(config.applications):
        try:
            app = load_application(schema.import_path, {k: str(v) for k, v in schema.args.items()})
        except ConfigError as exc:
            raise ConfigError(f"applications[{i}].import_path: {exc}") from None
        apps.append((schema, _with_overrides(app, schema, i)))
    for schema, app in apps:
        api.run(
            app, name=schema.name, route_prefix=schema.route_prefix, _import_path=schema.import_path
        )
    wanted = {schema.name for schema, _ in apps}
    for name in api.status().applications:
        if name not in wanted:
            api.delete(name)


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
