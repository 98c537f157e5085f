"""Least recently used: the entry not asked for the longest leaves first.

What Ray Serve's ``@serve.multiplexed`` does (with a count limit only); here it honours
byte budgets too. It ignores sizes, costs and frequencies, which is why it is not the
default: see ``benchmarks/cache_policies.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from serval.models.eviction.base import EvictionPolicy

__all__ = ["LRUPolicy"]


class LRUPolicy(EvictionPolicy):
    """Evict the least recently inserted or hit entry.

    Example::

        policy = LRUPolicy()
        policy.insert("a", 1, 1.0); policy.insert("b", 1, 1.0); policy.hit("a")
        policy.victim()   # -> "b"
    """

    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()  # oldest first

    def insert(self, key: str, size: int, cost: float) -> None:
        self._order[key] = None
        self._order.move_to_end(key)

    def hit(self, key: str) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def remove(self, key: str, *, evicted: bool = False) -> None:
        self._order.pop(key, None)

    def victim(self, skip: Container[str] = frozenset()) -> str | None:
        for key in self._order:
            if key not in skip:
                return key
        return None

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)
