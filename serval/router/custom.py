"""A deployment's own request router (``request_router_config``) inside serval's router.

The Router keeps its job — counting each replica's requests, the queue and its
``max_queued_requests`` bound, retries on unreachable replicas — and asks the user's
:class:`~serval.request_router.RequestRouter` only *which* replica: the candidates are
the replicas with room now, ``choose_replicas`` ranks them in groups, and the router
takes the least busy replica of the first group that still has room (checked after
the await, with no await between the check and the increment). When no group has
room the request waits in the router's queue as any other, and asks again on the next
release (or after a back-off, when replicas had room but none was chosen).

A user router that raises (or returns something other than groups of replicas) does
not fail requests: they get serval's own choice, and the error is logged once per
router, not once per request. The default path (no ``request_router_config``) never
enters this module.
"""

from __future__ import annotations

import itertools
import logging
import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from serval.context import DeploymentID, ReplicaID
from serval.request_router.base import RequestRouter
from serval.request_router.types import (
    DeploymentHandleSource,
    PendingRequest,
    RequestMetadata,
    RunningReplica,
)
from serval.transport.messages import Call, HttpRequest, Message, ModelDelta, RequestRouterSpec

if TYPE_CHECKING:
    from serval.router.assignment import _Slot
    from serval.router.router import Router

logger = logging.getLogger("serval.router")

# Back-off while choose_replicas picks none of the replicas that have room (Ray Serve's).
BACKOFF_INITIAL_S = 0.025
BACKOFF_MAX_S = 0.5


class Declined:
    """choose_replicas ranked no replica that has room, though some had."""


DECLINED = Declined()


class CustomChoice:
    """One user RequestRouter instance and the RunningReplica views it is shown."""

    def __init__(
        self,
        router_name: str,
        spec: RequestRouterSpec,
        *,
        source: DeploymentHandleSource,
        node_id: str,
        availability_zone: str | None,
        num_pending: Callable[[], int],
    ) -> None:
        """Unpickle, construct and initialize the user's router (may raise)."""
        self.spec = spec
        self.app, _, self.deployment = router_name.partition("/")
        cls = pickle.loads(spec.serialized_class)
        self.user: RequestRouter = cls(
            deployment_id=DeploymentID(self.deployment, self.app),
            handle_source=source,
            self_node_id=node_id,
            prefer_local_node_routing=False,
            prefer_local_az_routing=source is DeploymentHandleSource.PROXY,
            self_availability_zone=availability_zone,
        )
        self.user._num_pending = num_pending
        self.user.initialize_state(**spec.kwargs)
        self._views: dict[str, RunningReplica] = {}
        self._ids = itertools.count(1)
        self.failures: dict[str, int] = {}  # hook → times it raised (logged the first time)

    # -- replica set ------------------------------------------------------------------

    def update(self, slots: Sequence[_Slot]) -> None:
        views: dict[str, RunningReplica] = {}
        for slot in slots:
            view = self._views.get(slot.replica_id)
            if view is None or view._slot is not slot:
                view = RunningReplica(
                    slot, ReplicaID(slot.replica_id, self.deployment, self.app), set()
                )
            view._model_ids.clear()
            view._model_ids.update(slot.info.model_ids)
            views[slot.replica_id] = view
        self._views = views
        self._hook("update_replicas", self.user.update_replicas, list(views.values()))

    def apply_models(self, delta: ModelDelta) -> None:
        view = self._views.get(delta.replica_id)
        if view is None:
            return
        view._model_ids.difference_update(delta.removed)
        view._model_ids.update(delta.added)
        self._hook(
            "update_replicas",
            self.user._on_models_changed,
            view.replica_id,
            delta.added,
            delta.removed,
        )

    # -- per request ------------------------------------------------------------------

    def pending(self, msg: Message) -> PendingRequest:
        meta = RequestMetadata(
            request_id=getattr(msg, "request_id", ""),
            internal_request_id=str(next(self._ids)),
            app_name=self.app,
            multiplexed_model_id=getattr(msg, "model_id", ""),
        )
        if isinstance(msg, Call):
            meta.call_method, meta.is_streaming = msg.method, msg.stream
            return PendingRequest(metadata=meta, payload=msg.payload)
        meta.route, meta.is_http_request = getattr(msg, "path", ""), True
        meta.is_streaming = not isinstance(msg, HttpRequest)  # a WebSocket
        return PendingRequest([], {}, meta)

    async def choose(self, router: Router, pending: PendingRequest) -> _Slot | Declined | None:
        """The slot for ``pending``; None when no replica has room, DECLINED when some
        had but the user's router ranked none of them."""
        free = [s for s in router._choices if router._free(s)]
        if not free:
            return None
        views = self._views
        candidates = [views[s.replica_id] for s in free if s.replica_id in views]
        try:
            ranked = await self.user.choose_replicas(
                candidate_replicas=candidates, pending_request=pending
            )
            return _first_with_room(router, ranked)
        except Exception as exc:
            self._failed("choose_replicas", exc)
            return router._pick(pending.metadata.multiplexed_model_id)

    def routed(self, pending: PendingRequest, slot: _Slot, result: Any) -> None:
        view = self._views.get(slot.replica_id)
        if view is not None:
            self._hook(
                "on_request_routed", self.user.on_request_routed, pending, view.replica_id, result
            )

    def completed(self, slot: _Slot, pending: PendingRequest) -> None:
        view = self._views.get(slot.replica_id)
        if view is not None:
            self._hook(
                "on_request_completed",
                self.user.on_request_completed,
                view.replica_id,
                pending.metadata.internal_request_id,
            )

    def unavailable(self, slot: _Slot, connection_lost: bool) -> None:
        view = self._views.get(slot.replica_id)
        if view is None:
            return
        self._hook(
            "on_replica_actor_unavailable", self.user.on_replica_actor_unavailable, view.replica_id
        )
        if connection_lost:
            self._hook("on_replica_actor_died", self.user.on_replica_actor_died, view.replica_id)

    # -- errors -----------------------------------------------------------------------

    def _hook(self, name: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self._failed(name, exc)

    def _failed(self, hook: str, exc: Exception) -> None:
        count = self.failures[hook] = self.failures.get(hook, 0) + 1
        if count == 1:
            logger.error(
                "request router %s of %s/%s: %s raised %s: %s (logged once; %s)",
                self.spec.class_path,
                self.app,
                self.deployment,
                hook,
                type(exc).__name__,
                exc,
                "requests get serval's own choice meanwhile"
                if hook == "choose_replicas"
                else "ignored",
                exc_info=exc,
            )


def backoff_s(attempt: int) -> float:
    return float(min(BACKOFF_INITIAL_S * 2**attempt, BACKOFF_MAX_S))


def _first_with_room(router: Router, ranked: Any) -> _Slot | Declined:
    """The least busy replica with room in the first group that has one."""
    if not isinstance(ranked, list | tuple):
        raise TypeError(f"choose_replicas must return a list of lists of replicas, got {ranked!r}")
    for group in ranked:
        if not isinstance(group, list | tuple):
            raise TypeError(
                "choose_replicas must return a list of lists of replicas (groups, best "
                f"first), got a list holding {group!r}"
            )
        best: _Slot | None = None
        for replica in group:
            if not isinstance(replica, RunningReplica):
                raise TypeError(f"choose_replicas returned {replica!r}, not a RunningReplica")
            slot: _Slot = replica._slot  # type: ignore[assignment]
            if slot.removed or not router._free(slot):
                continue
            if best is None or slot.in_flight < best.in_flight:
                best = slot
        if best is not None:
            return best
    return DECLINED
