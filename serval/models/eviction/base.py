"""What an eviction policy is, and the aged-frequency heap the ranking policies share.

A policy only *ranks* entries. The tier that owns them (the hot cache, a warm tier, the
benchmark's simulator) tells it what happened — an entry came in, was hit, left — and,
through :class:`~serval.models.eviction.budget.Budget`, asks which entry should leave
next. Policies never see models or bytes, only keys, sizes and load costs, so the same
objects rank models in a replica's memory, blobs on a shared disk and keys in Redis.

:class:`FrequencyPolicy` (GDSF, LFU) ranks by an *aged request count*: every request
adds 1, and counts decay exponentially with a half-life of ``half_life`` requests, so
yesterday's hot model fades and leaves while today's rises. Counts outlive eviction (a
*history* of recently seen keys, pruned as their counts decay), so a popular model that
was pushed out comes back with its popularity instead of starting from one request.
The same history lets the policy refuse a returning model that is worth less than what
it would push out (:meth:`EvictionPolicy.admits`); a model never seen before always gets
its chance, since a new tenant's first request usually starts a session.

Decay is exact and costs nothing per request: counts are kept relative to an epoch and
each request adds ``2 ** (age / half_life)``, so comparing counts compares their decayed
values and the heap order never goes stale.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["EvictionPolicy", "FrequencyPolicy"]

DEFAULT_HALF_LIFE = 10_000  # requests
_RENORMALIZE_AT = 256.0  # half-lives since the epoch before counts are rescaled
_FORGET_BELOW = 0.25  # history entries decayed below a quarter request are dropped
_COMPACT_SLACK = 64  # stale heap items tolerated before the heap is rebuilt


class EvictionPolicy(ABC):
    """Ranks the entries of one tier; the tier asks it which entry leaves next.

    Example::

        policy = GDSFPolicy()
        policy.insert("tenant7", size=50_000_000, cost=0.8)   # 50 MB, 0.8 s to load
        policy.hit("tenant7")
        policy.victim(skip={"tenant7"})                       # -> another key, or None
    """

    name: ClassVar[str]

    @abstractmethod
    def insert(self, key: str, size: int, cost: float) -> None:
        """``key`` entered the tier: ``size`` bytes, ``cost`` seconds to load it again."""

    @abstractmethod
    def hit(self, key: str) -> None:
        """``key`` was requested and found in the tier."""

    @abstractmethod
    def remove(self, key: str, *, evicted: bool = False) -> None:
        """``key`` left the tier; ``evicted`` when it left because this policy chose it.

        Unknown keys are ignored.
        """

    @abstractmethod
    def victim(self, skip: Container[str] = frozenset()) -> str | None:
        """The entry that should leave next, never one in ``skip`` (pinned, or already
        chosen); ``None`` when every entry is skipped. Does not remove it."""

    def admits(self, key: str, size: int, cost: float, victims: Sequence[str]) -> bool:
        """Whether ``key`` is worth more than the ``victims`` it would push out."""
        return True

    def rejected(self, key: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """``key`` was requested and loaded but not admitted (it still counts)."""

    def set_limits(  # noqa: B027 - optional hook, no-op by default
        self, max_entries: int | None, max_bytes: int | None
    ) -> None:
        """The tier's limits (``None``: none), told by its budget whenever they change: a
        policy may weigh an entry by the share of them it takes."""

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(entries={len(self)})"


@dataclass
class _Entry:
    size: int
    cost: float
    count: float  # aged request count, relative to the policy's epoch
    priority: float = 0.0
    seq: int = 0  # identifies the live heap item; older first among equal priorities


class FrequencyPolicy(EvictionPolicy):
    """Evicts the entry of lowest :meth:`value`, computed from its aged request count.

    ``half_life``: requests (inserts, hits and rejected loads) after which a count has
    halved. Larger remembers popularity longer (better when it is stable), smaller
    follows shifts faster.
    """

    def __init__(self, *, half_life: int = DEFAULT_HALF_LIFE) -> None:
        if isinstance(half_life, bool) or not isinstance(half_life, int) or half_life < 1:
            raise ValueError(f"half_life must be an int >= 1 (requests), got {half_life!r}")
        self.half_life = half_life
        self._entries: dict[str, _Entry] = {}
        self._history: dict[str, float] = {}  # aged counts of keys that left
        self._heap: list[tuple[float, int, str]] = []  # may hold stale items
        self._seq = itertools.count()
        self._clock = 0  # requests seen
        self._epoch = 0  # clock value counts are relative to

    @abstractmethod
    def value(self, count: float, size: int, cost: float) -> float:
        """What keeping an entry is worth. Must be ``count`` times a factor that does not
        depend on ``count``: that keeps the heap order valid as counts age."""

    def insert(self, key: str, size: int, cost: float) -> None:
        self.remove(key)
        count = self._history.pop(key, 0.0) + self._tick()
        entry = _Entry(size=max(int(size), 1), cost=max(float(cost), 0.0), count=count)
        self._entries[key] = entry
        self._push(key, entry)

    def hit(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.count += self._tick()
            self._push(key, entry)

    def rejected(self, key: str) -> None:
        self._history[key] = self._history.get(key, 0.0) + self._tick()

    def remove(self, key: str, *, evicted: bool = False) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._history[key] = entry.count

    def admits(self, key: str, size: int, cost: float, victims: Sequence[str]) -> bool:
        past = self._history.get(key)
        if past is None or not victims:
            return True  # never seen (recently): a newcomer gets its chance
        mine = self.value(past + self._increment(), max(int(size), 1), max(float(cost), 0.0))
        return mine >= max(self._entries[v].priority for v in victims)

    def victim(self, skip: Container[str] = frozenset()) -> str | None:
        held: list[tuple[float, int, str]] = []
        found = None
        while self._heap:
            _, seq, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is None or entry.seq != seq:
                heapq.heappop(self._heap)  # stale: the entry left or was re-ranked
            elif key in skip:
                held.append(heapq.heappop(self._heap))
            else:
                found = key
                break
        for item in held:
            heapq.heappush(self._heap, item)
        return found

    def count(self, key: str) -> float:
        """The aged request count of ``key`` now (in the tier or remembered; 0 if not)."""
        entry = self._entries.get(key)
        raw = entry.count if entry is not None else self._history.get(key, 0.0)
        return raw / self._increment()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # -- aging -----------------------------------------------------------------------

    def _increment(self) -> float:
        return float(2.0 ** ((self._clock - self._epoch) / self.half_life))

    def _tick(self) -> float:
        """Count one request; returns what it adds to a count."""
        self._clock += 1
        if (self._clock - self._epoch) / self.half_life >= _RENORMALIZE_AT:
            self._renormalize()
        elif self._clock % self.half_life == 0:
            self._forget()
        return self._increment()

    def _push(self, key: str, entry: _Entry) -> None:
        entry.priority = self.value(entry.count, entry.size, entry.cost)
        entry.seq = next(self._seq)
        heapq.heappush(self._heap, (entry.priority, entry.seq, key))
        if len(self._heap) > 2 * len(self._entries) + _COMPACT_SLACK:
            self._rebuild()

    def _forget(self) -> None:
        floor = _FORGET_BELOW * self._increment()
        self._history = {k: c for k, c in self._history.items() if c >= floor}

    def _renormalize(self) -> None:
        scale = 1.0 / self._increment()
        self._epoch = self._clock
        for entry in self._entries.values():
            entry.count *= scale
        self._history = {k: c * scale for k, c in self._history.items()}
        self._forget()
        self._rebuild()

    def _rebuild(self) -> None:
        for entry in self._entries.values():
            entry.priority = self.value(entry.count, entry.size, entry.cost)
        self._heap = [(e.priority, e.seq, k) for k, e in self._entries.items()]
        heapq.heapify(self._heap)
