"""Admission filters: whether a newly loaded entry may push others out.

Without one, every miss enters the tier and evicts something, so a burst of one-off
tenants flushes the models everybody uses. :class:`TinyLFU` remembers roughly how
often each key was asked for recently, and admits a newcomer only if it is asked for
more often than every entry it would evict. A rejected model
still answers the request that loaded it; it just is not kept. Its memory is a
count-min sketch of ``4 × expected_entries`` one-byte counters plus the keys seen once
in the current sample.

Reference: G. Einziger, R. Friedman, B. Manes, "TinyLFU: A Highly Efficient Cache
Admission Policy", ACM Transactions on Storage, 2017.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

__all__ = ["AdmissionFilter", "CountMinSketch", "TinyLFU"]

_ROWS = 4
_MASK64 = (1 << 64) - 1


def _hash64(key: str) -> tuple[int, int]:
    # A stable hash (Python's str hash changes per process), split in two for double
    # hashing: row i uses h1 + i * h2.
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


class AdmissionFilter(ABC):
    """Decides whether a new entry may displace the entries a policy chose to evict.

    Example::

        doorman = TinyLFU(expected_entries=1000)
        doorman.record("tenant7")                  # on every request, hit or miss
        doorman.admit("tenant7", victims=["old"])  # -> True if tenant7 is asked for more
    """

    name: ClassVar[str]

    @abstractmethod
    def record(self, key: str) -> None:
        """``key`` was requested (whether or not it was found)."""

    @abstractmethod
    def admit(self, key: str, victims: Sequence[str]) -> bool:
        """Whether ``key`` should enter the tier at the cost of evicting ``victims``."""


class CountMinSketch:
    """Approximate counts in ``rows × width`` small counters (never under-counts)."""

    def __init__(self, width: int, rows: int = _ROWS) -> None:
        if width < 1 or rows < 1:
            raise ValueError(f"width and rows must be >= 1, got {width} and {rows}")
        self.width = 1 << (width - 1).bit_length()  # a power of two: index with a mask
        self.rows = rows
        self._table = [bytearray(self.width) for _ in range(rows)]  # counters cap at 255

    def _cells(self, key: str) -> list[int]:
        h1, h2 = _hash64(key)
        mask = self.width - 1
        return [((h1 + i * h2) & _MASK64) & mask for i in range(self.rows)]

    def add(self, key: str) -> None:
        for row, cell in zip(self._table, self._cells(key), strict=True):
            if row[cell] < 255:
                row[cell] += 1

    def estimate(self, key: str) -> int:
        return min(row[cell] for row, cell in zip(self._table, self._cells(key), strict=True))

    def halve(self) -> None:
        for i, row in enumerate(self._table):
            self._table[i] = bytearray(c >> 1 for c in row)


class TinyLFU(AdmissionFilter):
    """Admit a newcomer only if it was asked for more often, recently, than each victim.

    A *doorkeeper* (the set of keys seen once) absorbs one-off keys so they never reach the
    sketch; every ``sample_size`` requests all counts are halved and the doorkeeper
    cleared, so "recently" means roughly the last ``sample_size`` requests.

    ``expected_entries``: about how many distinct keys are requested within a sample.
    """

    name = "tinylfu"

    def __init__(self, expected_entries: int = 10_000, sample_size: int | None = None) -> None:
        if expected_entries < 1:
            raise ValueError(f"expected_entries must be >= 1, got {expected_entries!r}")
        self.sketch = CountMinSketch(width=4 * expected_entries)
        self.sample_size = sample_size or 10 * expected_entries
        self._doorkeeper: set[str] = set()
        self._seen = 0

    def record(self, key: str) -> None:
        if key in self._doorkeeper:
            self.sketch.add(key)
        else:
            self._doorkeeper.add(key)
        self._seen += 1
        if self._seen >= self.sample_size:
            self._seen = 0
            self._doorkeeper.clear()
            self.sketch.halve()

    def frequency(self, key: str) -> int:
        """About how often ``key`` was asked for recently."""
        return self.sketch.estimate(key) + (1 if key in self._doorkeeper else 0)

    def admit(self, key: str, victims: Sequence[str]) -> bool:
        if not victims:
            return True
        candidate = self.frequency(key)
        return all(candidate > self.frequency(v) for v in victims)
