"""The warm tier: any backend plus what every backend needs — signing, a byte budget
with its own eviction policy, statistics, and riding out outages.

- **Signing**: payloads are sealed (:mod:`serval.models.tiers.signing`); a blob that
  fails verification is deleted, counted in ``rejected`` and reported as a miss, so
  the store reloads it from the registry (and puts a good copy back).
- **Budget**: a put makes room through the same
  :class:`~serval.models.eviction.Budget` as the hot tier, with its own policy. Other
  processes write to the backend too, so the tier lists what it holds before a put, at
  most every ``sync_interval_s`` seconds (and no more often than 20 times the last
  listing took; 0: before every put): a listing walks every entry, and listing 100,000
  of them per cold load would make loads cost O(models). Between listings the tier
  counts its own puts; what others wrote meanwhile counts from the next listing.
- **Outages**: when the backend fails, the tier logs one warning, counts one outage and
  is skipped for ``retry_s`` seconds (no request waits on a dead Redis); then one
  request tries it again. Requests keep succeeding from the registry meanwhile; the
  recovery is logged once too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time

from serval.models.eviction import Budget, EvictionPolicy, make_policy
from serval.models.stats import TierStats
from serval.models.tiers.base import TierBackend, TierUnavailableError
from serval.models.tiers.signing import TamperedBlobError, seal, unseal

__all__ = ["WarmTier"]

logger = logging.getLogger("serval.models")

_DEFAULT_COST_S = 1.0  # load time assumed for blobs other processes put
_SYNC_COST_FACTOR = 20  # listings take at most 1/20 of the time between them


class WarmTier:
    """A shared cache of model artifacts between the registry and the replicas.

    ``namespace`` separates stores that share a backend (the store passes its
    registry's identity); ``secret`` is the HMAC key.

    Example::

        warm = WarmTier(DiskTier("/var/cache/serval"), max_bytes=20 * 2**30)
        await warm.put("tenant7@3", payload, cost=2.5)
        await warm.get("tenant7@3")     # -> the payload, verified, or None
    """

    def __init__(
        self,
        backend: TierBackend,
        *,
        max_bytes: int,
        policy: str | EvictionPolicy = "gdsf",
        secret: bytes | None = None,
        namespace: str = "",
        retry_s: float = 10.0,
        sync_interval_s: float = 5.0,
    ) -> None:
        self.backend = backend
        self.secret = secret
        self.namespace = namespace
        self.retry_s = retry_s
        self.sync_interval_s = sync_interval_s
        self._synced_at = -float("inf")  # monotonic time of the last listing
        self._sync_took_s = 0.0
        chosen = make_policy(policy, "warm_policy") if isinstance(policy, str) else policy
        self._budget = Budget(chosen, max_bytes=max_bytes)
        self._stats = TierStats()
        self._down = False
        self._skip_until = 0.0
        self._put_lock = asyncio.Lock()
        self._known_costs: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"WarmTier({self.backend!r}, max_bytes={self._budget.max_bytes})"

    def key(self, ref: str) -> str:
        """The backend key of a model reference (``name@version``)."""
        return hashlib.sha256(f"{self.namespace}\0{ref}".encode()).hexdigest()[:40]

    async def get(self, ref: str) -> memoryview | None:
        """The payload stored for ``ref`` if present and its signature verifies."""
        if not self._usable():
            self._stats.misses += 1
            return None
        key = self.key(ref)
        try:
            blob = await self.backend.get(key)
        except TierUnavailableError as exc:
            self._went_down(exc)
            self._stats.misses += 1
            return None
        self._came_up()
        if blob is None:
            self._stats.misses += 1
            self._budget.remove(key)
            return None
        try:
            payload = unseal(key, blob, self.secret)
        except TamperedBlobError as exc:
            logger.warning(
                "warm tier %r: discarding the blob of %r (%s); loading it from the registry",
                self.backend,
                ref,
                exc,
            )
            await self.discard(ref)
            self._stats.rejected += 1
            self._stats.misses += 1
            return None
        self._stats.hits += 1
        if key in self._budget:
            self._budget.hit(key)
        return payload

    async def put(self, ref: str, payload: bytes, cost: float) -> bool:
        """Store ``payload`` for ``ref`` (``cost``: seconds the registry took), evicting
        by policy to stay within budget; whether it was stored."""
        if not self._usable():
            return False
        key = self.key(ref)
        blob = seal(key, payload, self.secret)
        async with self._put_lock:
            try:
                await self._sync_if_due()
                self._budget.remove(key)
                decision = self._budget.admit(key, len(blob), cost)
                if not decision.admitted:
                    logger.info("warm tier: not keeping %r: %s", ref, decision.reason)
                    return False
                self._known_costs[key] = cost
                for victim in decision.victims:
                    await self.backend.delete(victim)
                    self._known_costs.pop(victim, None)
                    self._stats.evictions += 1
                await self.backend.put(key, blob)
            except TierUnavailableError as exc:
                self._went_down(exc)
                self._budget.remove(key)
                return False
        self._came_up()
        self._stats.loads += 1
        self._stats.bytes_loaded += len(blob)
        self._stats.load_time_s += cost
        return True

    async def discard(self, ref: str) -> None:
        """Delete what is stored for ``ref`` (unreadable, or known bad)."""
        key = self.key(ref)
        self._budget.remove(key)
        try:
            await self.backend.delete(key)
        except TierUnavailableError as exc:
            self._went_down(exc)

    def stats(self) -> TierStats:
        return dataclasses.replace(
            self._stats, bytes_used=self._budget.bytes_used, entries=len(self._budget)
        )

    async def close(self) -> None:
        await self.backend.close()

    async def _sync_if_due(self) -> None:
        wait = max(self.sync_interval_s, _SYNC_COST_FACTOR * self._sync_took_s)
        if self.sync_interval_s > 0 and time.monotonic() - self._synced_at < wait:
            return  # (0: list before every put)
        started = time.monotonic()
        self._sync(await self.backend.sizes())
        self._synced_at = time.monotonic()
        self._sync_took_s = self._synced_at - started

    def _sync(self, stored: dict[str, int]) -> None:
        """Align the budget with what the backend holds (other processes write too)."""
        for key in [k for k in self._budget.sizes if k not in stored]:
            self._budget.remove(key)
        costs = list(self._known_costs.values())
        typical = sum(costs) / len(costs) if costs else _DEFAULT_COST_S
        for key, size in stored.items():
            if self._budget.sizes.get(key) != size:
                self._budget.adopt(key, size, self._known_costs.get(key, typical))

    def _usable(self) -> bool:
        return not self._down or time.monotonic() >= self._skip_until

    def _went_down(self, exc: Exception) -> None:
        self._skip_until = time.monotonic() + self.retry_s
        if not self._down:
            self._down = True
            self._stats.outages += 1
            logger.warning(
                "warm tier %r is unavailable (%s); serving models from the registry and "
                "retrying every %.0fs",
                self.backend,
                exc,
                self.retry_s,
            )

    def _came_up(self) -> None:
        if self._down:
            self._down = False
            logger.warning("warm tier %r is available again", self.backend)
