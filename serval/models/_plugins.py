"""Every pluggable part of the model store, picked by name from one table.

Values are ``"module:attribute"`` strings, resolved only when chosen, so picking the
disk tier never imports redis and picking a directory registry never imports mlflow.
A name that is not in the table may itself be a ``"module:attribute"`` path (your own
policy, tier or loader).
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from serval.exceptions import ConfigError

__all__ = ["PLUGINS", "is_known", "plugin_names", "resolve_plugin"]

PLUGINS: Final[dict[str, dict[str, str]]] = {
    "policy": {
        "gdsf": "serval.models.eviction.gdsf:GDSFPolicy",
        "lfu": "serval.models.eviction.lfu:LFUPolicy",
        "lru": "serval.models.eviction.lru:LRUPolicy",
        "popularity": "serval.models.eviction.popularity:PopularityPolicy",
    },
    "admission": {
        "tinylfu": "serval.models.eviction.admission:TinyLFU",
    },
    "tier": {
        "disk": "serval.models.tiers.disk:DiskTier",
        "memory": "serval.models.tiers.memory:MemoryTier",
        "redis": "serval.models.tiers.redis:RedisTier",
    },
    "registry": {
        "directory": "serval.models.registry.directory:DirectoryRegistry",
        "memory": "serval.models.registry.memory:MemoryRegistry",
        "mlflow": "serval.models.registry.mlflow:MLflowRegistry",
    },
    "loader": {
        "joblib": "serval.models.loaders:load_joblib",
        "onnx": "serval.models.loaders:load_onnx",
        "pickle": "serval.models.loaders:load_pickle",
        "torchscript": "serval.models.loaders:load_torchscript",
    },
}


def plugin_names(kind: str) -> list[str]:
    """The names ``kind`` ("policy", "tier", ...) can be picked by."""
    return sorted(PLUGINS[kind])


def is_known(kind: str, name: str) -> bool:
    """Whether ``name`` is in the table or looks like a ``module:attribute`` path."""
    return name in PLUGINS[kind] or _is_path(name)


def resolve_plugin(kind: str, name: str, option: str) -> Any:
    """The object ``name`` stands for; ``option`` names the setting in errors."""
    target = PLUGINS[kind].get(name)
    if target is None:
        if not _is_path(name):
            raise ConfigError(
                f"invalid {option} {name!r}: one of {plugin_names(kind)} "
                "or a 'module:attribute' path"
            )
        target = name
    module_name, _, attr = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{option} {name!r} needs module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(
                f"{option} {name!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    return value


def _is_path(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and "/" not in name
