"""Eviction policies, admission filters and the offline figures they are judged by.

Every tier ranks its entries with a policy picked by name: ``"popularity"`` (the
default for the hot tier: request rate per byte, near the popularity oracle), ``"gdsf"``
(cost-aware; the warm tier's default), ``"lfu"`` (LFU with dynamic aging) or ``"lru"``;
optionally a ``"tinylfu"`` admission filter keeps one-off tenants from flushing hot
models. See ``benchmarks/cache_policies.py`` for how they compare with Belady's offline
schedule and the online limits (:mod:`serval.models.eviction.oracle`).
"""

from __future__ import annotations

from typing import Any

from serval.exceptions import ConfigError
from serval.models._plugins import resolve_plugin
from serval.models.eviction.admission import AdmissionFilter, TinyLFU
from serval.models.eviction.base import EvictionPolicy, FrequencyPolicy
from serval.models.eviction.budget import Admission, Budget, LoadRoom
from serval.models.eviction.gdsf import GDSFPolicy
from serval.models.eviction.lfu import LFUPolicy
from serval.models.eviction.lru import LRUPolicy
from serval.models.eviction.popularity import PopularityPolicy
from serval.models.eviction.replay import ReplayResult, TraceRequest, replay

__all__ = [
    "Admission",
    "AdmissionFilter",
    "Budget",
    "EvictionPolicy",
    "FrequencyPolicy",
    "GDSFPolicy",
    "LFUPolicy",
    "LRUPolicy",
    "LoadRoom",
    "PopularityPolicy",
    "ReplayResult",
    "TinyLFU",
    "TraceRequest",
    "make_admission",
    "make_policy",
    "replay",
]


def make_policy(name: str, option: str = "policy", **kwargs: Any) -> EvictionPolicy:
    """A new policy picked by name (``"popularity"``, ``"gdsf"``, ``"lfu"``, ``"lru"`` or
    ``module:Class``)."""
    cls = resolve_plugin("policy", name, option)
    policy = cls(**kwargs)
    if not isinstance(policy, EvictionPolicy):
        raise ConfigError(f"{option} {name!r} is {type(policy).__name__}, not an EvictionPolicy")
    return policy


def make_admission(name: str, option: str = "admission", **kwargs: Any) -> AdmissionFilter:
    """A new admission filter picked by name (``"tinylfu"`` or ``module:Class``)."""
    cls = resolve_plugin("admission", name, option)
    doorman = cls(**kwargs)
    if not isinstance(doorman, AdmissionFilter):
        raise ConfigError(f"{option} {name!r} is {type(doorman).__name__}, not an AdmissionFilter")
    return doorman
