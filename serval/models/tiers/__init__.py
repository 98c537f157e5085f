"""Warm tiers: shared caches of model artifacts between the registry and the replicas.

A :class:`~serval.models.tiers.base.TierBackend` does the I/O (``disk``, ``redis``,
``memory``; picked by name); :class:`~serval.models.tiers.warm.WarmTier` adds signing,
a byte budget with its own eviction policy, statistics and outage handling.
"""

from __future__ import annotations

from serval.models._env import default_warm_dir
from serval.models._plugins import resolve_plugin
from serval.models.config import StoreConfig, warm_kind
from serval.models.tiers.base import TierBackend, TierUnavailableError
from serval.models.tiers.memory import MemoryTier
from serval.models.tiers.signing import TamperedBlobError, seal, unseal
from serval.models.tiers.warm import WarmTier

__all__ = [
    "MemoryTier",
    "TamperedBlobError",
    "TierBackend",
    "TierUnavailableError",
    "WarmTier",
    "make_backend",
    "make_warm_tier",
    "seal",
    "unseal",
]


def make_backend(config: StoreConfig) -> TierBackend | None:
    """The backend ``config.warm`` names (``None`` for ``warm="none"``)."""
    kind = warm_kind(config.warm)
    if kind is None or kind == "none":
        return None
    cls = resolve_plugin("tier", kind, "warm")
    if kind == "disk":
        _, _, directory = config.warm.partition(":")
        backend: TierBackend = cls(directory or default_warm_dir())
    elif kind == "redis":
        backend = cls(config.warm, chunk_bytes=config.redis_chunk_bytes)
    else:
        backend = cls()
    return backend


def make_warm_tier(config: StoreConfig, namespace: str) -> WarmTier | None:
    """The warm tier ``config`` describes, or ``None`` when it has none."""
    backend = make_backend(config)
    if backend is None:
        return None
    return WarmTier(
        backend,
        max_bytes=config.warm_max_bytes,
        policy=config.warm_policy,
        secret=config.hmac_key.encode() if config.hmac_key else None,
        namespace=namespace,
        retry_s=config.warm_retry_s,
    )
