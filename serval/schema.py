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
            user_config: {threshold: 0.3}

Applying a file is declarative and idempotent: unchanged deployments are untouched,
``user_config``-only changes reconfigure replicas in place, code changes roll out,
and applications missing from the file are deleted. Errors name the YAML path of
the bad field (``applications[0].deployments[1].num_replicas``).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serval.config import AutoscalingConfig, HTTPOptions
from serval.exceptions import ConfigError

__all__ = ["ApplicationSchema", "DeploymentSchema", "ServeConfig", "load_config"]


class _Strict(BaseModel):
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

    @field_validator("num_replicas")
    @classmethod
    def _replicas(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str) and v != "auto":
            raise ValueError("must be an int >= 0 or 'auto'")
        if isinstance(v, int) and v < 0:
            raise ValueError("must be an int >= 0 or 'auto'")
        return v

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"}, exclude_unset=True)


class ApplicationSchema(_Strict):
    name: str = "default"
    route_prefix: str | None = "/"
    import_path: str
    args: dict[str, Any] = Field(default_factory=dict)
    deployments: list[DeploymentSchema] = Field(default_factory=list)


class ServeConfig(_Strict):
    http_options: HTTPOptions | None = None
    applications: list[ApplicationSchema]

    @field_validator("applications")
    @classmethod
    def _unique(cls, apps: list[ApplicationSchema]) -> list[ApplicationSchema]:
        names = [a.name for a in apps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"application names must be unique; repeated: {dupes}")
        return apps


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
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{source}: {_path(err['loc'])}: {msg} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def dump_config(config: ServeConfig) -> str:
    data = config.model_dump(mode="json", exclude_none=True, exclude_unset=False)
    for app in data["applications"]:
        for dep in app["deployments"]:
            for key in [k for k, v in dep.items() if v is None]:
                del dep[key]
    return yaml.safe_dump(data, sort_keys=False)
