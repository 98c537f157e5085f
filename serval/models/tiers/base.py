"""What a warm-tier backend is: a shared store of byte blobs by key, nothing more.

Backends do I/O only. Signing, budgets, eviction and outage handling live once, above
them, in :class:`~serval.models.tiers.warm.WarmTier`, so a new backend (S3, memcached)
is four small methods. Keys are short ``[0-9a-z_-]`` strings (the warm tier hashes
model references into them), safe as file names and Redis keys.

A backend that cannot be reached raises :class:`TierUnavailableError` — the one place
its library's errors are translated; the warm tier then serves from the registry.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar

__all__ = ["TierBackend", "TierUnavailableError", "check_key"]

_KEY = re.compile(r"^[0-9a-z_-]{1,128}$")


class TierUnavailableError(Exception):
    """The backend cannot be used right now (down, unreachable, out of space).

    Internal: the warm tier catches it, logs it once, counts it and falls through to
    the registry; callers of :func:`serval.models.load` never see it.
    """


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"invalid tier key {key!r}: expected 1-128 characters of [0-9a-z_-]")
    return key


class TierBackend(ABC):
    """Get, put and delete byte blobs by key; list what is stored and how big.

    Example (the in-memory fake)::

        tier = MemoryTier()
        await tier.put("k1", b"blob")
        await tier.get("k1")      # -> b"blob"
        await tier.sizes()        # -> {"k1": 4}
    """

    name: ClassVar[str]

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The blob stored under ``key``, or ``None``."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any blob there. Readers see the old
        blob or the new one, never a mix."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""

    @abstractmethod
    async def sizes(self) -> dict[str, int]:
        """Every key stored (by any process sharing the backend) and its size in bytes."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the backend may not be used afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
