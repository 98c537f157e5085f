"""``RequestRouter``: the class a user's request router subclasses (Ray Serve's shape).

serval calls it from the deployment's router in every process that sends the
deployment requests (proxies, drivers, replicas holding handles):

- ``initialize_state(**request_router_kwargs)`` once, after construction;
- ``update_replicas(replicas)`` whenever the controller publishes a new replica set;
- ``await choose_replicas(candidate_replicas, pending_request)`` per request, with the
  replicas below their ``max_ongoing_requests``; it returns groups of replicas, best
  first, and the router takes the least busy replica of the first group that has room;
- ``on_request_routed(pending_request, replica_id, result)`` once the replica accepted
  the request, ``on_request_completed(replica_id, internal_request_id)`` when it is done;
- ``on_replica_actor_unavailable(replica_id)`` when a replica could not be reached, and
  ``on_replica_actor_died(replica_id)`` when its connection was lost.
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable
from typing import Any

from serval.context import DeploymentID, ReplicaID
from serval.request_router.types import (
    DeploymentHandleSource,
    PendingRequest,
    ReplicaResult,
    RunningReplica,
)


class RequestRouter(abc.ABC):
    """Decides which replicas a deployment's requests go to.

    Example::

        class Uniform(RequestRouter):
            async def choose_replicas(self, candidate_replicas, pending_request=None):
                return [[random.choice(candidate_replicas)]]

        @serval.deployment(request_router_config=RequestRouterConfig(
            request_router_class=Uniform))
        class Model: ...
    """

    def __init__(
        self,
        deployment_id: DeploymentID,
        handle_source: DeploymentHandleSource = DeploymentHandleSource.UNKNOWN,
        self_actor_id: str | None = None,
        self_actor_handle: Any = None,
        use_replica_queue_len_cache: bool = False,
        get_curr_time_s: Callable[[], float] | None = None,
        create_replica_wrapper_func: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # Ray Serve's arguments are accepted; the ones about actors and queue-length
        # probes mean nothing here (serval's router counts each replica's requests).
        self._deployment_id = deployment_id
        self._handle_source = handle_source
        self._get_curr_time_s = get_curr_time_s if get_curr_time_s is not None else time.time
        self._replicas: dict[ReplicaID, RunningReplica] = {}
        self._replica_id_set: set[ReplicaID] = set()
        self._replicas_list: list[RunningReplica] = []
        self._num_pending: Callable[[], int] = lambda: 0  # set by serval's router

    # -- what a subclass implements -----------------------------------------------------

    def initialize_state(self, **kwargs: Any) -> None:
        """Called once with ``request_router_kwargs``."""
        return None

    @abc.abstractmethod
    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """Rank ``candidate_replicas`` (those with room now) for ``pending_request``:
        groups of replicas, the most preferred first. The request goes to the least busy
        replica of the first group with room; when none has, it waits for one and asks
        again."""

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: ReplicaResult
    ) -> None:
        """The replica accepted the request."""
        return None

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        """The request finished on the replica (answered, failed or cancelled)."""
        return None

    def on_replica_actor_unavailable(self, replica_id: ReplicaID) -> None:
        """A request could not reach the replica; the router skips it for a while."""
        return None

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        """The replica's connection was lost: it is left out until the controller's
        next replica set includes it again."""
        self._replicas.pop(replica_id, None)
        self._replica_id_set.discard(replica_id)
        self._replicas_list = list(self._replicas.values())
        self._on_replica_removed(replica_id)

    # -- state serval keeps up to date --------------------------------------------------

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        """The replicas the controller published (serval calls this on every change)."""
        self._replicas = {r.replica_id: r for r in replicas}
        self._replica_id_set = set(self._replicas)
        self._replicas_list = list(replicas)
        self._on_replicas_updated(replicas)

    def select_available_replicas(
        self, candidates: list[RunningReplica] | None = None
    ) -> list[RunningReplica]:
        """The replicas among ``candidates`` (default: all) below max_ongoing_requests."""
        pool = self._replicas_list if candidates is None else candidates
        return [r for r in pool if r.num_ongoing_requests < r.max_ongoing_requests]

    @property
    def curr_replicas(self) -> dict[ReplicaID, RunningReplica]:
        return self._replicas

    @property
    def app_name(self) -> str:
        return self._deployment_id.app_name

    @property
    def num_pending_requests(self) -> int:
        """Requests waiting in this router's queue for a replica with room."""
        return self._num_pending()

    def on_new_queue_len_info(self, replica_id: ReplicaID, num_ongoing_requests: int) -> None:
        """Ray Serve's queue-length cache; serval counts requests itself."""
        return None

    def on_send_request(self, replica_id: ReplicaID) -> None:
        """Ray Serve's queue-length cache; serval counts requests itself."""
        return None

    # -- hooks the mixins extend (each calls super()) -----------------------------------

    def _on_replicas_updated(self, replicas: list[RunningReplica]) -> None:
        return None  # a hook: subclasses override it

    def _on_replica_removed(self, replica_id: ReplicaID) -> None:
        return None  # a hook: subclasses override it

    def _on_models_changed(
        self, replica_id: ReplicaID, added: list[str], removed: list[str]
    ) -> None:
        return None  # a hook: subclasses override it


class PowerOfTwoChoicesRequestRouter(RequestRouter):
    """Two random candidates, the less busy one wins; a request with a model id prefers
    the replicas that hold the model. This is what serval's built-in router does (in a
    faster, model-aware form), and naming this class (or leaving
    ``request_router_class`` unset) selects the built-in one; subclass it to start from
    this behaviour in Python."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        model_id = pending_request.metadata.multiplexed_model_id if pending_request else ""
        if model_id:
            holders = [r for r in candidate_replicas if model_id in r.multiplexed_model_ids]
            if holders:
                return [holders]
        if len(candidate_replicas) <= 2:
            return [candidate_replicas]
        return [random.sample(candidate_replicas, 2)]
