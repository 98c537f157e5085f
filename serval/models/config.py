"""The model store's option groups: small validated objects with a readable repr.

:class:`CacheConfig` shapes one hot tier (a ``@serval.multiplexed`` cache in a replica);
:class:`StoreConfig` says where models come from (the registry) and where they are
cached between the registry and the replicas (the warm tier). Bad values raise
:class:`~serval.exceptions.ConfigError` naming the option, the value and what is
allowed, when the object is built — never later inside a replica.

Example::

    CacheConfig(max_models=64, max_bytes="2GiB", policy="gdsf")
    StoreConfig(registry="s3://models/", warm="redis://cache:6379/0", hmac_key="...")
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from serval.config import _describe, _Options, validated
from serval.exceptions import ConfigError
from serval.models._plugins import is_known, plugin_names
from serval.models._sizes import ALLOWED as BYTES_ALLOWED
from serval.models._sizes import parse_bytes

__all__ = ["CacheConfig", "StoreConfig", "validated"]

WARM_FORMS = "'disk', 'disk:<directory>', 'redis://…', 'rediss://…', 'memory' or 'none'"


def _bytes(value: Any, option: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_bytes(value, option)
    except ConfigError:
        raise ValueError(f"expected {BYTES_ALLOWED}") from None


def _plugin(kind: str, value: str | None) -> str | None:
    if value is not None and not is_known(kind, value):
        raise ValueError(f"expected one of {plugin_names(kind)} or a 'module:Class' path")
    return value


class _ModelOptions(_Options):
    def __init__(self, **options: Any) -> None:
        # Built directly (not through `validated`): still a ConfigError naming the option.
        try:
            super().__init__(**options)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, type(self).__name__)) from None

    def __repr__(self) -> str:
        # Secrets (fields declared repr=False) show that they are set, never their value.
        shown = self.model_dump(exclude_defaults=True)
        for name, info in type(self).model_fields.items():
            if not info.repr and name in shown:
                shown[name] = "***"
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"{type(self).__name__}({inner})"

    __str__ = __repr__


class CacheConfig(_ModelOptions):
    """One hot tier: how many models and bytes it may hold, how it evicts and loads.

    Example::

        CacheConfig(max_models=None, max_bytes="8GiB", admission="tinylfu")
    """

    model_config = ConfigDict(frozen=True)

    max_models: int | None = Field(3, ge=1)  # None: no count limit
    max_bytes: int | None = None  # measured after load; None: no byte limit
    policy: str = "popularity"  # eviction policy: popularity, gdsf, lfu, lru or module:Class
    admission: str | None = None  # admission filter: tinylfu or module:Class
    # Loads at once in this cache: None bounds them by memory only (bytes loading plus
    # bytes resident within max_bytes, or half the machine's memory without max_bytes).
    max_concurrent_loads: int | None = Field(None, ge=1)
    # Live loads waiting for memory beyond this are refused: 503 + Retry-After.
    max_queued_loads: int | None = Field(1024, ge=1)
    load_timeout_s: float | None = Field(300.0, gt=0, allow_inf_nan=False)
    load_retries: int = Field(2, ge=0)  # extra attempts after a failed load
    retry_backoff_s: float = Field(0.5, ge=0, allow_inf_nan=False)  # doubles per attempt

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _max_bytes(cls, v: Any) -> int | None:
        size = _bytes(v, "max_bytes")
        if size is not None and size < 1:
            raise ValueError("must be at least 1 byte (or None for no limit)")
        return size

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        _plugin("policy", v)
        return v

    @field_validator("admission")
    @classmethod
    def _admission(cls, v: str | None) -> str | None:
        return _plugin("admission", v)


class StoreConfig(_ModelOptions):
    """Where models come from and where they are cached between registry and replicas.

    ``registry``: a directory, any fsspec URL (``s3://bucket/models``), or
    ``mlflow:<tracking-uri>`` (``mlflow:http://mlflow:5000``, ``mlflow:sqlite:///m.db``).
    ``warm``: ``disk`` (a directory shared by the replicas of this machine, under
    ``$SERVAL_HOME``), ``disk:<dir>``, ``redis://host:port/db`` (shared by machines;
    needs ``hmac_key``), ``memory`` (this process only) or ``none``.
    ``loader``: how to turn an artifact into a model — a name (``joblib``, ``onnx``,
    ``torchscript``, ``pickle``) or ``module:function``; by default the file extension
    decides.

    Example::

        StoreConfig(registry="/srv/models", warm="disk", warm_max_bytes="20GiB")
    """

    model_config = ConfigDict(frozen=True)

    registry: str | None = None
    warm: str = "disk"
    warm_max_bytes: int = 10 * 1024**3
    warm_policy: str = "gdsf"
    warm_retry_s: float = Field(10.0, gt=0, allow_inf_nan=False)  # skip a down tier this long
    hmac_key: str | None = Field(None, min_length=16, repr=False)
    loader: str | None = None
    redis_chunk_bytes: int = 4 * 1024**2
    # How often replicas ask the registry whether the models they hold moved to a new
    # version (or their alias moved); 0 turns watching off (`refresh` still works).
    watch_interval_s: float = Field(30.0, ge=0, allow_inf_nan=False)

    @field_validator("warm_max_bytes", "redis_chunk_bytes", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> int:
        size = _bytes(v, "size")
        if size is None or size < 1:
            raise ValueError(f"expected {BYTES_ALLOWED}, at least 1 byte")
        return size

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty: a path, an fsspec URL or mlflow:<uri>")
        return v

    @field_validator("warm")
    @classmethod
    def _warm(cls, v: str) -> str:
        kind = warm_kind(v)
        if kind is None:
            raise ValueError(f"expected {WARM_FORMS}")
        return v

    @field_validator("warm_policy")
    @classmethod
    def _warm_policy(cls, v: str) -> str:
        _plugin("policy", v)
        return v

    @field_validator("loader")
    @classmethod
    def _loader(cls, v: str | None) -> str | None:
        return _plugin("loader", v)

    @model_validator(mode="after")
    def _signed_redis(self) -> StoreConfig:
        if warm_kind(self.warm) == "redis" and not self.hmac_key:
            raise ValueError(
                "a redis warm tier needs hmac_key (or SERVAL_MODELS_HMAC_KEY): every blob is "
                "signed so that whoever can write to Redis cannot make replicas unpickle code"
            )
        return self


def warm_kind(warm: str) -> str | None:
    """``disk``, ``redis``, ``memory``, ``none``, or ``None`` when ``warm`` is malformed."""
    if warm in ("disk", "memory", "none"):
        return warm
    if warm.startswith("disk:") and len(warm) > len("disk:"):
        return "disk"
    if warm.startswith(("redis://", "rediss://", "unix://")):
        return "redis"
    return None
