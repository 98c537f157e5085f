"""A tier's limits, and the one algorithm that makes room: shared by every tier.

:class:`Budget` knows each entry's size and how many entries and bytes the tier may
hold. :meth:`Budget.admit` asks the policy for victims until a newcomer fits, asks the
policy whether the newcomer is worth them and then the admission filter, and either
commits (victims out, newcomer in) or changes nothing. :meth:`Budget.room_for_load`
makes room *before* a load, for a tier whose budget covers loads in flight too (the
hot cache's).
The hot cache, the warm tier and the benchmark's simulator all call it, so what the
benchmark measures is what the replicas run.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from serval.models.eviction.admission import AdmissionFilter
from serval.models.eviction.base import EvictionPolicy

__all__ = ["Admission", "Budget", "LoadRoom"]


@dataclass(frozen=True)
class Admission:
    """What :meth:`Budget.admit` decided."""

    admitted: bool
    victims: list[str] = field(default_factory=list)  # evicted to make room, in order
    reason: str = ""  # why not admitted


@dataclass(frozen=True)
class LoadRoom:
    """What :meth:`Budget.room_for_load` decided."""

    go: bool  # the load may start now
    keep: bool = True  # False: room was made for this load alone; serve it, do not keep it
    victims: list[str] = field(default_factory=list)  # evicted for it, in order


class Budget:
    """Entries of one tier against a count limit and a byte limit (``None``: no limit).

    Example::

        budget = Budget(GDSFPolicy(), max_entries=None, max_bytes=2 * 2**30)
        decision = budget.admit("tenant7", size=300_000_000, cost=1.2)
        for key in decision.victims:
            release(key)          # the caller frees what was evicted
    """

    def __init__(
        self,
        policy: EvictionPolicy,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        admission: AdmissionFilter | None = None,
    ) -> None:
        self.policy = policy
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        policy.set_limits(max_entries, max_bytes)
        self.admission = admission
        self.sizes: dict[str, int] = {}
        self.bytes_used = 0

    @property
    def max_entries(self) -> int | None:
        return self._max_entries

    @max_entries.setter
    def max_entries(self, value: int | None) -> None:
        self._max_entries = value
        self.policy.set_limits(value, self._max_bytes)

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int | None) -> None:
        self._max_bytes = value
        self.policy.set_limits(self._max_entries, value)

    def __contains__(self, key: object) -> bool:
        return key in self.sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def __repr__(self) -> str:
        return (
            f"Budget({self.policy!r}, entries={len(self)}/{self.max_entries}, "
            f"bytes={self.bytes_used}/{self.max_bytes})"
        )

    def record_request(self, key: str) -> None:
        """A request for ``key`` arrived (hit or miss): feeds the admission filter."""
        if self.admission is not None:
            self.admission.record(key)

    def hit(self, key: str) -> None:
        """``key`` was found: the policy ranks it up."""
        self.policy.hit(key)

    def admit(
        self,
        key: str,
        size: int,
        cost: float,
        protected: Container[str] = frozenset(),
        *,
        force: bool = False,
    ) -> Admission:
        """Make room for ``key`` and insert it, or leave everything unchanged.

        Entries in ``protected`` (pinned ones) are never chosen as victims. ``key`` must
        not be in the budget already (:meth:`remove` it first to replace it). ``force``
        (a pinned newcomer): no veto from the policy or the admission filter; evict what
        can be evicted and insert it even if that leaves the tier over its limits.
        """
        if key in self.sizes:
            raise ValueError(f"{key!r} is already in the budget; remove it first")
        if not force and self.max_bytes is not None and size > self.max_bytes:
            return self._reject(key, f"its {size} bytes exceed max_bytes={self.max_bytes}")
        victims, fits = self._victims(size, protected)
        if not force:
            if not fits:
                return self._reject(key, "every entry that could make room for it is pinned")
            if victims and not self.policy.admits(key, size, cost, victims):
                return self._reject(key, "the policy values the entries it would evict more")
            if victims and self.admission is not None and not self.admission.admit(key, victims):
                return self._reject(key, "the admission filter kept the current entries")
        self.evict(victims)
        self.adopt(key, size, cost)
        return Admission(True, victims)

    def room_for_load(
        self,
        key: str,
        over: int,
        size: int,
        cost: float,
        protected: Container[str] = frozenset(),
        *,
        force: bool = False,
        alone: bool = True,
    ) -> LoadRoom:
        """Make ``over`` more bytes of room for a load of ``key`` (``size`` bytes
        expected) before it starts. When the policy and the admission filter would keep
        ``key`` in place of the entries it takes (or ``force``), they are evicted now:
        the entries :meth:`admit` would evict after the load. Otherwise the load waits
        (``go`` False) unless it is ``alone`` (no other load can end and make room):
        then they are evicted anyway and ``keep`` says to serve it without keeping it.
        When evicting cannot make the room (``protected`` entries fill the tier), a
        load alone goes on regardless."""
        if over <= 0:
            return LoadRoom(True)
        victims, enough = self.victims_for(over, protected)
        if not enough:
            return LoadRoom(alone)
        if force or self.worth(key, size, cost, victims):
            self.evict(victims)
            return LoadRoom(True, True, victims)
        if not alone:
            return LoadRoom(False)
        self.evict(victims)
        return LoadRoom(True, False, victims)

    def victims_for(
        self, nbytes: int, protected: Container[str] = frozenset()
    ) -> tuple[list[str], bool]:
        """The entries the policy would evict first to free ``nbytes`` (skipping
        ``protected``), and whether they free that much; nothing changes. A cache
        making room for a load before it starts asks this."""
        chosen: list[str] = []
        skip = _Union(protected, chosen)
        freed = 0
        while freed < nbytes:
            victim = self.policy.victim(skip)
            if victim is None:
                return chosen, False
            chosen.append(victim)
            freed += self.sizes[victim]
        return chosen, True

    def worth(self, key: str, size: int, cost: float, victims: list[str]) -> bool:
        """Whether the policy and the admission filter would keep ``key`` in place of
        ``victims`` (as :meth:`admit` decides); nothing changes."""
        if not victims:
            return True
        if not self.policy.admits(key, size, cost, victims):
            return False
        return self.admission is None or self.admission.admit(key, victims)

    def evict(self, victims: list[str]) -> None:
        """Evict ``victims`` (from :meth:`victims_for`, say) now."""
        for victim in victims:
            self._drop(victim, evicted=True)

    def decline(self, key: str) -> None:
        """``key`` was loaded and served but is not kept (room was made for its load
        alone): the policy counts the request as it counts a refused newcomer."""
        self.policy.rejected(key)

    def adopt(self, key: str, size: int, cost: float) -> None:
        """Record an entry that is already in the tier (put there by another process)."""
        if key in self.sizes:
            self._drop(key, evicted=False)
        self.sizes[key] = size
        self.bytes_used += size
        self.policy.insert(key, size, cost)

    def remove(self, key: str) -> bool:
        """``key`` left the tier for a reason other than eviction (evict(), refresh)."""
        return self._drop(key, evicted=False)

    def over_budget(self, protected: Container[str] = frozenset()) -> list[str]:
        """Evict until the tier is back within its limits (after other processes added
        entries, or the limits shrank); returns the victims, already removed from the
        budget. Entries in ``protected`` are never chosen."""
        victims, _ = self._victims(0, protected, extra_entries=0)
        for victim in victims:
            self._drop(victim, evicted=True)
        return victims

    def _reject(self, key: str, reason: str) -> Admission:
        self.policy.rejected(key)
        return Admission(False, reason=reason)

    def _victims(
        self, size: int, protected: Container[str], extra_entries: int = 1
    ) -> tuple[list[str], bool]:
        chosen: list[str] = []
        skip = _Union(protected, chosen)
        count = len(self.sizes) + extra_entries
        used = self.bytes_used + size
        while (self.max_entries is not None and count > self.max_entries) or (
            self.max_bytes is not None and used > self.max_bytes
        ):
            victim = self.policy.victim(skip)
            if victim is None:
                return chosen, False
            chosen.append(victim)
            count -= 1
            used -= self.sizes[victim]
        return chosen, True

    def _drop(self, key: str, *, evicted: bool) -> bool:
        size = self.sizes.pop(key, None)
        if size is None:
            return False
        self.bytes_used -= size
        self.policy.remove(key, evicted=evicted)
        return True


class _Union:
    """``key in a or key in b`` without building a set per eviction."""

    def __init__(self, a: Container[str], b: list[str]) -> None:
        self.a = a
        self.b = b

    def __contains__(self, key: object) -> bool:
        return key in self.a or key in self.b
