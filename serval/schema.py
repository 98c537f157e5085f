"""The config file for CI/CD deploys: ``serval build`` writes it, ``serval deploy`` applies it.

::

    http_options: {host: 127.0.0.1, port: 8000}
    applications:
      - name: shop
        route_prefix: /shop
        import_path: app:shop          # an Application, a Deployment or a builder function
        args: {}                       # for a builder function
        deployments:                   # per-deployment overrides of the code's options
          - name: Model
            num_replicas: 2
            logging_config: {encoding: JSON, enable_access_log: true}
            user_config: {threshold: 0.3}

Applying a file is declarative and idempotent: unchanged deployments are untouched,
``user_config``-only changes reconfigure replicas in place, code changes roll out,
and applications missing from the file are deleted. Errors name the YAML path of
the bad field (``applications[0].deployments[1].num_replicas``).

Every field of Ray Serve's deploy schema (``serve build`` output, a KubeRay
``serveConfigV2``) is accepted. Fields serval applies: ``http_options``,
``proxy_location`` (→ ``http_options.location``), ``logging_config`` (top level,
application and deployment; the nearest wins), ``request_router_config`` (a
deployment's own request router), an application's ``runtime_env``
(``env_vars`` for every deployment, a local ``working_dir`` for imports and as the
replicas' working directory) and every deployment option serval has. The rest are
accepted with one notice each naming the field and why it has no effect here
(:func:`notices`); an unknown field is still an error.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serval.config import (
    AutoscalingConfig,
    BackpressureConfig,
    GRPCOptions,
    HTTPOptions,
    LoggingConfig,
    RequestRouterConfig,
)
from serval.exceptions import ConfigError
from serval.observability.tracing import TracingConfig

__all__ = [
    "ApplicationSchema",
    "DeploymentSchema",
    "GRPCOptionsSchema",
    "HTTPOptionsSchema",
    "LoggingConfigSchema",
    "RequestRouterConfigSchema",
    "ServeConfig",
    "TracingConfigSchema",
    "load_config",
    "notices",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoggingConfigSchema(LoggingConfig):
    """Ray Serve's ``logging_config`` (per deployment, application or instance): a
    :class:`~serval.config.LoggingConfig`, validated the same way."""

    def as_options(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class HTTPOptionsSchema(HTTPOptions):
    """serval's HTTP options plus Ray Serve's TLS fields (accepted, noticed)."""

    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = Field(None, repr=False)
    ssl_ca_certs: str | None = None

    def to_options(self) -> HTTPOptions:
        return HTTPOptions.model_validate(
            self.model_dump(include=set(HTTPOptions.model_fields), exclude_unset=True)
        )


class GRPCOptionsSchema(GRPCOptions):
    """Ray Serve's ``grpc_options``: the proxy's gRPC ingress."""

    model_config = ConfigDict(extra="forbid")


class RequestRouterConfigSchema(RequestRouterConfig):
    """Ray Serve's ``request_router_config``: the class path is imported when the file is
    deployed (an error names it then), not when it is read."""


class TracingConfigSchema(TracingConfig):
    """Ray Serve's ``tracing_config`` (see :mod:`serval.observability.tracing`)."""

    model_config = ConfigDict(extra="forbid")


class DeploymentSchema(_Strict):
    name: str
    num_replicas: int | str | None = None
    max_ongoing_requests: int | None = Field(None, ge=1)
    max_queued_requests: int | None = Field(None, ge=-1)
    user_config: Any = None
    autoscaling_config: AutoscalingConfig | None = None
    health_check_period_s: float | None = Field(None, gt=0)
    health_check_timeout_s: float | None = Field(None, gt=0)
    graceful_shutdown_timeout_s: float | None = Field(None, ge=0)
    graceful_shutdown_wait_loop_s: float | None = Field(None, ge=0)
    ray_actor_options: dict[str, Any] | None = None
    placement_group_bundles: list[dict[str, float]] | None = None
    placement_group_strategy: str | None = None
    max_replicas_per_node: int | None = Field(None, ge=1)
    logging_config: LoggingConfigSchema | None = None
    backpressure_config: BackpressureConfig | None = None
    rolling_update_percentage: float | None = Field(None, gt=0, le=1)
    max_surge_percent: int | None = Field(None, ge=0, le=100)
    request_router_config: RequestRouterConfigSchema | None = None
    # Ray Serve fields serval accepts but does not act on (see ``notices``).
    placement_group_bundle_label_selector: list[dict[str, str]] | None = None
    gang_scheduling_config: dict[str, Any] | None = None
    deployment_actors: list[dict[str, Any]] | None = None

    @field_validator("num_replicas")
    @classmethod
    def _replicas(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str) and v != "auto":
            raise ValueError("must be an int >= 0 or 'auto'")
        if isinstance(v, int) and v < 0:
            raise ValueError("must be an int >= 0 or 'auto'")
        return v

    def overrides(self) -> dict[str, Any]:
        """The deployment options this entry sets (only those serval acts on)."""
        return self.model_dump(exclude={"name", *_DEPLOYMENT_NOTICES}, exclude_unset=True)


class ApplicationSchema(_Strict):
    name: str = "default"
    route_prefix: str | None = "/"
    import_path: str
    args: dict[str, Any] = Field(default_factory=dict)
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    logging_config: LoggingConfigSchema | None = None
    deployments: list[DeploymentSchema] = Field(default_factory=list)
    # Ray Serve fields serval accepts but does not act on (see ``notices``).
    host: str | None = None
    port: int | None = None
    autoscaling_policy: dict[str, Any] | None = None
    external_scaler_enabled: bool | None = None

    @field_validator("runtime_env")
    @classmethod
    def _runtime_env(cls, v: dict[str, Any]) -> dict[str, Any]:
        env_vars = v.get("env_vars", {})
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(x, str) for k, x in env_vars.items()
        ):
            raise ValueError("runtime_env.env_vars must be a mapping of str -> str")
        if not isinstance(v.get("working_dir", ""), str):
            raise ValueError("runtime_env.working_dir must be a string")
        return v

    def local_working_dir(self) -> str | None:
        """The runtime_env's working_dir when it is a directory on this machine."""
        wd = str(self.runtime_env.get("working_dir") or "")
        if wd and "://" not in wd and os.path.isdir(wd):
            return os.path.abspath(wd)
        return None


class ServeConfig(_Strict):
    proxy_location: Literal["Disabled", "HeadOnly", "EveryNode"] | None = None
    http_options: HTTPOptionsSchema | None = None
    grpc_options: GRPCOptionsSchema | None = None
    logging_config: LoggingConfigSchema | None = None
    applications: list[ApplicationSchema]
    # Ray Serve fields serval accepts but does not act on (see ``notices``).
    controller_options: dict[str, Any] | None = None
    tracing_config: TracingConfigSchema | None = None
    target_capacity: float | None = Field(None, ge=0, le=100)

    @field_validator("applications")
    @classmethod
    def _unique(cls, apps: list[ApplicationSchema]) -> list[ApplicationSchema]:
        names = [a.name for a in apps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"application names must be unique; repeated: {dupes}")
        return apps

    def effective_http_options(self) -> HTTPOptions | None:
        """``http_options`` with ``proxy_location`` applied (Disabled: no proxy)."""
        if self.http_options is None and self.proxy_location is None and not self._grpc():
            return None
        options = self.http_options.to_options() if self.http_options else HTTPOptions()
        if self.proxy_location is not None:
            location = "NoServer" if self.proxy_location == "Disabled" else self.proxy_location
            options = options.model_copy(update={"location": location})
        if self._grpc():
            assert self.grpc_options is not None
            grpc = GRPCOptions.model_validate(self.grpc_options.model_dump())
            options = options.model_copy(update={"grpc_options": grpc})
        return options

    def _grpc(self) -> bool:
        return self.grpc_options is not None and bool(self.grpc_options.grpc_servicer_functions)


# Fields accepted for Ray Serve compatibility, with why they change nothing here.
_TOP_NOTICES = {
    "controller_options": "the controller's runtime_env is Ray's; ignored",
    "target_capacity": "target_capacity is not supported; replicas run at 100%",
}
_APP_NOTICES = {
    "host": "deprecated in Ray Serve; use http_options.host",
    "port": "deprecated in Ray Serve; use http_options.port",
    "autoscaling_policy": "application-level autoscaling policies are not supported",
    "external_scaler_enabled": "external scalers are not supported",
}
_DEPLOYMENT_NOTICES = {
    "placement_group_bundle_label_selector": "label selectors are not supported",
    "gang_scheduling_config": "gang scheduling is not supported",
    "deployment_actors": "deployment actors are not supported",
}
_HTTP_NOTICES = {
    "ssl_keyfile": "TLS is not terminated by serval's proxy; put a TLS proxy in front",
    "ssl_certfile": "TLS is not terminated by serval's proxy; put a TLS proxy in front",
    "ssl_keyfile_password": "TLS is not terminated by serval's proxy",
    "ssl_ca_certs": "TLS is not terminated by serval's proxy",
}
_RUNTIME_ENV_APPLIED = {"env_vars", "working_dir"}


def notices(config: ServeConfig) -> list[str]:
    """One line per field the file sets that serval accepts but does not act on."""
    out = [
        f"{field}: {why}" for field, why in _TOP_NOTICES.items() if field in config.model_fields_set
    ]
    if config.http_options is not None:
        out += [
            f"http_options.{field}: {why}"
            for field, why in _HTTP_NOTICES.items()
            if field in config.http_options.model_fields_set
        ]
    for i, app in enumerate(config.applications):
        where = f"applications[{i}]"
        out += [
            f"{where}.{f}: {why}" for f, why in _APP_NOTICES.items() if f in app.model_fields_set
        ]
        for key in sorted(set(app.runtime_env) - _RUNTIME_ENV_APPLIED):
            out.append(f"{where}.runtime_env.{key}: not supported (serval installs nothing)")
        wd = app.runtime_env.get("working_dir")
        if wd and app.local_working_dir() is None:
            out.append(f"{where}.runtime_env.working_dir: {wd!r} is not a local directory; ignored")
        for j, dep in enumerate(app.deployments):
            out += [
                f"{where}.deployments[{j}].{f}: {why}"
                for f, why in _DEPLOYMENT_NOTICES.items()
                if f in dep.model_fields_set
            ]
    return out


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_config(text: str, source: str = "config") -> ServeConfig:
    """Parse and validate a config file; ConfigError names the YAML path of each bad field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping with 'applications', got {type(raw).__name__}"
        )
    try:
        return ServeConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = "unknown field" if err["type"] == "extra_forbidden" else _expected(err)
            lines.append(f"{source}: {_path(err['loc'])}: {msg} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def _expected(err: Any) -> str:
    """pydantic's message, plus the type expected where pydantic names one."""
    msg = str(err["msg"])
    if err["type"] in ("model_type", "dict_type"):
        msg = f"{msg} (expected a mapping)"
    elif err["type"] == "list_type":
        msg = f"{msg} (expected a list)"
    return msg


def dump_config(config: ServeConfig) -> str:
    data = config.model_dump(mode="json", exclude_none=True, exclude_unset=False)
    for app in data["applications"]:
        for dep in app["deployments"]:
            for key in [k for k, v in dep.items() if v is None]:
                del dep[key]
    return yaml.safe_dump(data, sort_keys=False)
