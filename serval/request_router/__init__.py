"""Your own request router for a deployment (Ray Serve's ``ray.serve.request_router``).

Subclass :class:`RequestRouter`, implement ``choose_replicas``, and name the class in
the deployment's ``request_router_config``::

    import random
    from serval.config import RequestRouterConfig
    from serval.request_router import PendingRequest, RequestRouter, RunningReplica

    class Uniform(RequestRouter):
        async def choose_replicas(
            self,
            candidate_replicas: list[RunningReplica],
            pending_request: PendingRequest | None = None,
        ) -> list[list[RunningReplica]]:
            return [[random.choice(candidate_replicas)]]

    @serval.deployment(num_replicas=3, request_router_config=RequestRouterConfig(
        request_router_class=Uniform))          # or "my_module:Uniform"
    class Model: ...

Every process that sends the deployment requests (the proxy, and callers holding
handles) runs its own instance; the replica set, each replica's models and its
``record_routing_stats()`` arrive from the controller.
"""

from __future__ import annotations

from serval.context import DeploymentID, ReplicaID
from serval.request_router.base import PowerOfTwoChoicesRequestRouter, RequestRouter
from serval.request_router.mixins import FIFOMixin, LocalityMixin, MultiplexMixin
from serval.request_router.types import (
    DeploymentHandleSource,
    PendingRequest,
    ReplicaResult,
    RequestMetadata,
    RequestRoutingContext,
    RunningReplica,
)

__all__ = [
    "DeploymentHandleSource",
    "DeploymentID",
    "FIFOMixin",
    "LocalityMixin",
    "MultiplexMixin",
    "PendingRequest",
    "PowerOfTwoChoicesRequestRouter",
    "ReplicaID",
    "ReplicaResult",
    "RequestMetadata",
    "RequestRouter",
    "RequestRoutingContext",
    "RunningReplica",
]
