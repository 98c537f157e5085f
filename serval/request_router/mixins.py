"""Helpers a request router mixes in (Ray Serve's ``FIFOMixin``, ``LocalityMixin``,
``MultiplexMixin``), placed before ``RequestRouter`` among the bases::

    class MyRouter(FIFOMixin, MultiplexMixin, LocalityMixin, RequestRouter): ...

What they mean here:

- ``LocalityMixin``: a replica's ``node_id`` is its machine (on the ray runtime, its Ray
  node) and ``availability_zone`` the node's ``ray.io/availability-zone`` label (ray
  runtime only, else None); on the local runtime every replica is on the router's node.
- ``MultiplexMixin``: ``multiplexed_model_ids`` are the models each replica reports
  holding or loading (the same placement serval's model-aware routing uses).
- ``FIFOMixin``: serval's queue is first in, first out already; the mixin changes
  nothing and exists so that routers written for Ray Serve keep their bases.
"""

from __future__ import annotations

import enum
import random
import time
from typing import Any

from serval.context import ReplicaID
from serval.request_router.types import PendingRequest, RunningReplica

# How long a request with a model id waits for a replica that holds the model before
# it settles for replicas holding the fewest models (then for any replica).
MULTIPLEXED_MATCHING_TIMEOUT_S = 1.0


class LocalityScope(str, enum.Enum):
    NODE = "NODE"
    AVAILABILITY_ZONE = "AVAILABILITY_ZONE"


class FIFOMixin:
    """Requests get replicas in arrival order (serval's router always does this)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


class LocalityMixin:
    """Prefer replicas on the router's node, then in its availability zone."""

    _replica_id_set: set[ReplicaID]

    def __init__(
        self,
        self_node_id: str | None = None,
        prefer_local_node_routing: bool = False,
        prefer_local_az_routing: bool = False,
        self_availability_zone: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._self_node_id = self_node_id
        self._prefer_local_node_routing = prefer_local_node_routing
        self._prefer_local_az_routing = prefer_local_az_routing
        self._self_availability_zone = self_availability_zone
        self._colocated_replica_ids: dict[LocalityScope, set[ReplicaID]] = {
            LocalityScope.NODE: set(),
            LocalityScope.AVAILABILITY_ZONE: set(),
        }

    def _on_replicas_updated(self, replicas: list[RunningReplica]) -> None:
        node = {
            r.replica_id for r in replicas if self._self_node_id and r.node_id == self._self_node_id
        }
        zone = {
            r.replica_id
            for r in replicas
            if self._self_availability_zone and r.availability_zone == self._self_availability_zone
        }
        self._colocated_replica_ids = {
            LocalityScope.NODE: node,
            LocalityScope.AVAILABILITY_ZONE: zone,
        }
        super()._on_replicas_updated(replicas)  # type: ignore[misc]

    def _on_replica_removed(self, replica_id: ReplicaID) -> None:
        for ids in self._colocated_replica_ids.values():
            ids.discard(replica_id)
        super()._on_replica_removed(replica_id)  # type: ignore[misc]

    def apply_locality_routing(
        self, pending_request: PendingRequest | None = None
    ) -> set[ReplicaID]:
        """The replica ids to try for ``pending_request`` now: its node's (once), then
        its zone's (once), then all."""
        if pending_request is None:
            return self._replica_id_set
        ctx = pending_request.routing_context
        node = self._colocated_replica_ids[LocalityScope.NODE]
        zone = self._colocated_replica_ids[LocalityScope.AVAILABILITY_ZONE]
        if self._prefer_local_node_routing and not ctx.tried_same_node and node:
            ctx.tried_same_node, ctx.should_backoff = True, False
            return node
        if self._prefer_local_az_routing and not ctx.tried_same_az and zone:
            ctx.tried_same_az, ctx.should_backoff = True, False
            return zone
        ctx.should_backoff = True
        return self._replica_id_set

    def rank_replicas_via_locality(
        self, replicas: list[RunningReplica]
    ) -> list[list[RunningReplica]]:
        """Three groups: on the router's node, in its zone, elsewhere."""
        node = self._colocated_replica_ids[LocalityScope.NODE]
        zone = self._colocated_replica_ids[LocalityScope.AVAILABILITY_ZONE]
        ranked: list[list[RunningReplica]] = [[], [], []]
        for r in replicas:
            ranked[0 if r.replica_id in node else 1 if r.replica_id in zone else 2].append(r)
        return ranked


class MultiplexMixin:
    """Prefer replicas that hold the request's model, then those holding fewest models."""

    _replica_id_set: set[ReplicaID]
    _replicas: dict[ReplicaID, RunningReplica]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._multiplexed_model_id_to_replica_ids: dict[str, set[ReplicaID]] = {}
        # Model ids already sent to the fewest-models replicas once while no replica held
        # them: later requests wait for the holder instead of loading it elsewhere too.
        self._multiplexed_model_id_fallback_match: set[str] = set()

    def _on_replicas_updated(self, replicas: list[RunningReplica]) -> None:
        index: dict[str, set[ReplicaID]] = {}
        for r in replicas:
            for model_id in r.multiplexed_model_ids:
                index.setdefault(model_id, set()).add(r.replica_id)
        self._multiplexed_model_id_to_replica_ids = index
        super()._on_replicas_updated(replicas)  # type: ignore[misc]

    def _on_models_changed(
        self, replica_id: ReplicaID, added: list[str], removed: list[str]
    ) -> None:
        index = self._multiplexed_model_id_to_replica_ids
        for model_id in removed:
            holders = index.get(model_id)
            if holders is not None:
                holders.discard(replica_id)
                if not holders:
                    del index[model_id]
        for model_id in added:
            index.setdefault(model_id, set()).add(replica_id)
        super()._on_models_changed(replica_id, added, removed)  # type: ignore[misc]

    def _get_replica_ids_with_fewest_multiplexed_models(self) -> set[ReplicaID]:
        if not self._replicas:
            return set()
        fewest = min(len(r.multiplexed_model_ids) for r in self._replicas.values())
        return {rid for rid, r in self._replicas.items() if len(r.multiplexed_model_ids) == fewest}

    def apply_multiplex_routing(
        self, pending_request: PendingRequest | None = None
    ) -> set[ReplicaID]:
        """The replica ids to try for ``pending_request`` now: the model's holders (or,
        for a model nobody holds, the replicas with fewest models) until
        ``MULTIPLEXED_MATCHING_TIMEOUT_S`` passed, then the fewest-models replicas once,
        then all."""
        if pending_request is None:
            return self._replica_id_set
        ctx = pending_request.routing_context
        model_id = pending_request.metadata.multiplexed_model_id
        now = time.time()
        if ctx.multiplexed_start_matching_time is None:
            ctx.multiplexed_start_matching_time = now
        ctx.should_backoff = True
        timeout = random.uniform(MULTIPLEXED_MATCHING_TIMEOUT_S, 2 * MULTIPLEXED_MATCHING_TIMEOUT_S)
        if now - ctx.multiplexed_start_matching_time < timeout:
            holders = self._multiplexed_model_id_to_replica_ids.get(model_id)
            first_miss = not holders and model_id not in self._multiplexed_model_id_fallback_match
            ctx_retry = ctx.tried_first_multiplexed_models
            ctx.tried_first_multiplexed_models = True
            if first_miss or ctx_retry:
                self._multiplexed_model_id_fallback_match.add(model_id)
                return self._get_replica_ids_with_fewest_multiplexed_models()
            self._multiplexed_model_id_fallback_match.discard(model_id)
            return holders or set()
        if not ctx.tried_fewest_multiplexed_models:
            ctx.tried_fewest_multiplexed_models = True
            return self._get_replica_ids_with_fewest_multiplexed_models()
        return self._replica_id_set

    def rank_replicas_via_multiplex(
        self, replicas: list[RunningReplica], multiplexed_model_id: str
    ) -> list[list[RunningReplica]]:
        """Three groups: holding the model, holding the fewest models, the rest."""
        holders = self._multiplexed_model_id_to_replica_ids.get(multiplexed_model_id, set())
        fewest = self._get_replica_ids_with_fewest_multiplexed_models()
        ranked: list[list[RunningReplica]] = [[], [], []]
        for r in replicas:
            ranked[0 if r.replica_id in holders else 1 if r.replica_id in fewest else 2].append(r)
        return ranked
