"""Request routers and deployments for the request-router tests (imported by path).

Each ``Scored`` replica draws a random score, publishes it through
``record_routing_stats()`` and writes it to ``<registry>/<replica id>``, so a test
knows every replica's score and can tell which one a router must pick.
"""

from __future__ import annotations

import os
import random
from typing import Any

import serval
from serval.request_router import LocalityMixin, PendingRequest, RequestRouter, RunningReplica


class ByScore(RequestRouter):
    """The replica with the highest (``prefer="high"``) or lowest routing-stats score;
    none until the scores arrive (the request waits for them)."""

    def initialize_state(self, prefer: str = "high", **kwargs: Any) -> None:
        if prefer not in ("high", "low"):
            raise ValueError(f"prefer must be 'high' or 'low', got {prefer!r}")
        self.prefer = prefer

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        scored = [r for r in self.curr_replicas.values() if "score" in r.routing_stats]
        if len(scored) < len(self.curr_replicas):
            return []  # not every replica has reported yet
        pick = max if self.prefer == "high" else min
        return [[pick(scored, key=lambda r: r.routing_stats["score"])]]


class LocalByScore(LocalityMixin, ByScore):
    """ByScore among the replicas on the router's own node: requests hang unless the
    routers and replicas agree on their node ids."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        everyone = list(self.curr_replicas.values())
        here = {r.replica_id for r in self.rank_replicas_via_locality(everyone)[0]}
        ranked = await super().choose_replicas(candidate_replicas, pending_request)
        return [[r for r in group if r.replica_id in here] for group in ranked]


class Broken(RequestRouter):
    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        raise RuntimeError("this router is broken on purpose")


@serval.deployment(num_replicas=3, graceful_shutdown_wait_loop_s=0.1)
class Scored:
    def __init__(self, registry: str) -> None:
        self.replica = serval.get_replica_context().replica_id.unique_id
        self.score = random.random()
        with open(os.path.join(registry, self.replica), "w") as f:
            f.write(repr(self.score))

    def record_routing_stats(self) -> dict[str, Any]:
        return {"score": self.score}

    async def __call__(self, *args: Any) -> dict[str, Any]:
        return {"replica": self.replica, "score": self.score}


@serval.deployment(graceful_shutdown_wait_loop_s=0.1)
class Front:
    """Calls ``Scored`` of application ``scored`` through a handle (a router in a replica)."""

    def __init__(self) -> None:
        self.scored = serval.get_deployment_handle("Scored", "scored")

    async def __call__(self, *args: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.scored.remote()
        return result


def scored_app(args: dict[str, str]) -> serval.Application:
    """A builder for config files: ``args: {registry: DIR}``."""
    return Scored.bind(args["registry"])


def scores(registry: str) -> dict[str, float]:
    """Every Scored replica's score, by replica id."""
    out = {}
    for name in os.listdir(registry):
        with open(os.path.join(registry, name)) as f:
            out[name] = float(f.read())
    return out
