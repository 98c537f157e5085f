"""Registries: the cold tier, the source of truth for models and their versions.

``DirectoryRegistry`` (a path or any fsspec URL), ``MLflowRegistry`` (MLflow's model
registry) and ``MemoryRegistry`` (the in-memory fake), picked by
:func:`make_registry` from a registry string: ``/srv/models``, ``s3://bucket/models``,
``mlflow:<tracking-uri>``, ``memory``.
"""

from __future__ import annotations

from serval.exceptions import ConfigError
from serval.models._plugins import resolve_plugin
from serval.models.registry.base import (
    Artifact,
    ModelRef,
    ModelSpec,
    Registry,
    choose_model_file,
    parse_model_id,
    version_key,
)
from serval.models.registry.memory import MemoryRegistry

__all__ = [
    "Artifact",
    "MemoryRegistry",
    "ModelRef",
    "ModelSpec",
    "Registry",
    "choose_model_file",
    "make_registry",
    "parse_model_id",
    "version_key",
]


def make_registry(spec: str | None) -> Registry:
    """The registry a ``registry`` setting names (see the module docs)."""
    if not spec:
        raise ConfigError(
            "no model registry configured: call serval.models.configure(registry=...) or "
            "set SERVAL_MODELS_REGISTRY (a directory, an fsspec URL, or mlflow:<tracking-uri>)"
        )
    if spec.startswith("mlflow:"):
        uri = spec[len("mlflow:") :]
        if not uri:
            raise ConfigError("invalid registry 'mlflow:': give the tracking URI after 'mlflow:'")
        registry: Registry = resolve_plugin("registry", "mlflow", "registry")(uri)
    elif spec == "memory":
        registry = MemoryRegistry()
    else:
        cls = resolve_plugin("registry", "directory", "registry")
        try:
            registry = cls(spec)
        except (ImportError, ValueError) as exc:  # fsspec: unknown protocol, missing driver
            raise ConfigError(f"invalid registry {spec!r}: {exc}") from exc
    return registry
