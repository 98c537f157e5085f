"""Routing stats: every ``request_routing_stats_period_s`` the controller asks each
running replica of a deployment with its own request router for
``record_routing_stats()`` (at most ``request_routing_stats_timeout_s``), and publishes
what changed with the replica set, so every router's ``RunningReplica.routing_stats``
follows (Ray Serve's contract). Deployments on serval's own router are never asked.

A replica that fails to answer keeps its last stats; the failure is logged once, until
it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from serval.config import RequestRouterConfig
from serval.controller.replica import Replica, ReplicaStatus, call
from serval.transport.messages import GetRoutingStats

if TYPE_CHECKING:
    from serval.controller.deployment_state import DeploymentState

logger = logging.getLogger("serval.controller")


def poll(dep: DeploymentState, cfg: RequestRouterConfig, now: float) -> None:
    for r in list(dep.replicas.values()):
        if (
            r.status is ReplicaStatus.RUNNING
            and r.conn is not None
            and now - r.last_routing_stats >= cfg.request_routing_stats_period_s
        ):
            r.last_routing_stats = now
            dep._spawn(r, _ask(dep, r, cfg.request_routing_stats_timeout_s))


async def _ask(dep: DeploymentState, replica: Replica, timeout_s: float) -> None:
    assert replica.conn is not None
    try:
        stats = await call(replica.conn, GetRoutingStats(), timeout_s)
    except Exception as exc:
        if not replica.routing_stats_failed:
            replica.routing_stats_failed = True
            reason = (
                f"timed out after {timeout_s}s" if isinstance(exc, asyncio.TimeoutError) else exc
            )
            logger.warning(
                "record_routing_stats() of replica %s of %s/%s failed (routers keep its last "
                "stats; logged once): %s",
                replica.replica_id,
                dep.app,
                dep.name,
                reason,
            )
        return
    replica.routing_stats_failed = False
    if stats != replica.routing_stats and replica.status is ReplicaStatus.RUNNING:
        replica.routing_stats = stats
        dep.publish()
