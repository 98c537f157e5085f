"""The in-memory backend: the fake that unit tests use, and ``warm="memory"``.

It lives in one process, so as a real warm tier it only helps several caches of the
same process. ``available = False`` makes every call raise
:class:`~serval.models.tiers.base.TierUnavailableError`, to test outages.
"""

from __future__ import annotations

from serval.models.tiers.base import TierBackend, TierUnavailableError, check_key

__all__ = ["MemoryTier"]


class MemoryTier(TierBackend):
    """Blobs in a dict.

    Example::

        tier = MemoryTier()
        tier.available = False     # the next call raises TierUnavailableError
    """

    name = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.available = True
        self.calls = 0  # how many operations were attempted (outage tests count them)

    def _check(self) -> None:
        self.calls += 1
        if not self.available:
            raise TierUnavailableError("the memory tier is marked unavailable")

    async def get(self, key: str) -> bytes | None:
        self._check()
        return self.blobs.get(check_key(key))

    async def put(self, key: str, data: bytes) -> None:
        self._check()
        self.blobs[check_key(key)] = bytes(data)

    async def delete(self, key: str) -> bool:
        self._check()
        return self.blobs.pop(check_key(key), None) is not None

    async def sizes(self) -> dict[str, int]:
        self._check()
        return {key: len(blob) for key, blob in self.blobs.items()}

    def __repr__(self) -> str:
        return f"MemoryTier(blobs={len(self.blobs)})"
