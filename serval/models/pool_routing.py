"""Which pool serves a model, and which model id a request for it loads.

The many-models routing table: a model name maps to a pool by its exact name or by an
``fnmatch`` pattern (first match in the order given), else to the default pool; a
per-model canary sends ``weight`` of a name's requests to ``name@version`` and the rest
to ``name@stable`` (or ``name``, its latest version). The application's ingress routes
``POST /score`` with it and the proxy routes OIP v2 infer calls with the same table
(:class:`~serval.transport.messages.ModelRoutes`), so both paths agree.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Collection, Mapping
from typing import Protocol

from serval.transport.messages import ModelRoutes, SetModelRoutes

__all__ = ["CanarySplit", "PoolRouting", "is_pattern", "publish_model_routes"]


class CanarySplit(Protocol):
    """What a per-model canary needs (the app's pydantic model or the wire struct)."""

    @property
    def version(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def stable(self) -> str | None: ...


def is_pattern(key: str) -> bool:
    """Whether a mapping key is an ``fnmatch`` pattern rather than a model name."""
    return any(c in key for c in "*?[")


class PoolRouting:
    """``pool_of(name)`` and ``model_id_of(name)`` over one mapping and its canaries.

    A name's pool costs one dict look-up plus the patterns, however many names are
    mapped; a pool the table does not know (``pools``) falls back to ``default``.
    """

    def __init__(
        self,
        mapping: Mapping[str, str],
        canaries: Mapping[str, CanarySplit],
        pools: Collection[str],
        default: str,
        rng: random.Random | None = None,
    ) -> None:
        self.mapping = dict(mapping)
        self.canaries = dict(canaries)
        self.pools = frozenset(pools)
        self.default = default
        self._patterns = [(p, pool) for p, pool in self.mapping.items() if is_pattern(p)]
        self._random = rng or random.Random()

    def pool_of(self, name: str) -> str:
        pool = self.mapping.get(name)
        if pool is None:
            for pattern, target in self._patterns:
                if fnmatch.fnmatchcase(name, pattern):
                    pool = target
                    break
        return pool if pool in self.pools else self.default

    def model_id_of(self, name: str) -> str:
        """The model id a request for ``name`` loads: ``name`` (its latest version), or
        ``name@<version>`` for the share of its traffic a per-model canary takes."""
        canary = self.canaries.get(name)
        if canary is None:
            return name
        if self._random.random() < canary.weight:
            return f"{name}@{canary.version}"
        return f"{name}@{canary.stable}" if canary.stable else name


async def publish_model_routes(routes: ModelRoutes | None) -> None:
    """Hand the running replica's application's model routing table to the controller,
    which keeps it with the application (checkpointed) and gives it to every proxy;
    returns once they route with it. A no-op outside a serval instance (local testing
    mode: no proxy routes anything)."""
    from serval import _process, context

    if context._local_replica.get() is not None or not _process.is_connected():
        return
    app = context.get_replica_context().app_name
    await _process.current().controller.call(SetModelRoutes(app, routes), timeout_s=60)
