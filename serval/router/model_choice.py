"""Which replica should serve a request for model ``m`` (model-aware routing).

1. Replicas that hold ``m`` (or are loading it), least loaded first, while one has room
   — unless the least loaded holder has ``COPY_AT`` requests or more while a replica
   that does not hold ``m`` is idle: then ``m`` gets a copy there (a hot model's
   traffic is spread over the fleet instead of queueing on one replica's core while
   another waits; it takes an idle replica, so a busy fleet does not copy). The router
   allows it only for a model it has not sent to a new replica lately
   (``may_copy``): not while a first load may still be running (those requests wait
   for the load, they are not busy work), and one new copy at a time.
2. Otherwise rendezvous (highest-random-weight) hashing over all replicas: every
   router computes the same order for ``m``, so concurrent first requests for a cold
   model meet on the same replica and it loads once, and the fleet's hot sets do not
   duplicate each other. Bounded load: a replica more than ``LOAD_BOUND`` times the
   mean load (or full) is passed over for the next in ``m``'s order — that is how a
   model whose traffic outgrows one replica gets a second copy, and copies of a
   cooled-down model age out of the replicas' caches. While every holder is busy, a
   copy is added only on an idle replica; otherwise the request waits for a holder
   (a load costs far more than a short wait).

The router (``router.py``) turns a copy of a model that some replica holds warm into a
background load (``copies.py``): the request itself stays on a warm holder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

LOAD_BOUND = 1.25
COPY_AT = 8  # a holder this busy, with a replica idle: copy the model there


class SlotLike(Protocol):
    in_flight: int

    @property
    def replica_id(self) -> str: ...

    @property
    def capacity(self) -> int: ...


S = TypeVar("S", bound=SlotLike)


def rendezvous_order(model_id: str, replica_ids: Sequence[str]) -> list[str]:
    """Replica ids in ``model_id``'s preference order (the same in every process)."""

    def weight(rid: str) -> bytes:
        return hashlib.blake2b(f"{model_id}\x00{rid}".encode(), digest_size=8).digest()

    return sorted(replica_ids, key=weight, reverse=True)


def choose(
    model_id: str,
    slots: Sequence[S],
    holders: set[str],
    free: Callable[[S], bool],
    may_copy: bool = True,
) -> S | None:
    """The slot for a request of ``model_id``, or None when every candidate is full."""
    held = [s for s in slots if s.replica_id in holders and free(s)]
    if held:
        best = min(held, key=lambda s: s.in_flight)
        if best.in_flight < COPY_AT or not may_copy:
            return best
        idle = {
            s.replica_id: s
            for s in slots
            if s.replica_id not in holders and s.in_flight == 0 and free(s)
        }
        if not idle:
            return best
        return idle[rendezvous_order(model_id, list(idle))[0]]
    candidates = [s for s in slots if free(s)]
    if any(s.replica_id in holders for s in slots):
        # Every holder is busy: add a copy only on an idle replica, else wait for a holder.
        candidates = [s for s in candidates if s.in_flight == 0]
    if not candidates:
        return None
    by_id = {s.replica_id: s for s in candidates}
    total = sum(s.in_flight for s in slots)
    bound = LOAD_BOUND * (total + 1) / len(slots)
    order = rendezvous_order(model_id, list(by_id))
    for rid in order:
        if by_id[rid].in_flight <= bound:
            return by_id[rid]
    return by_id[order[0]]
