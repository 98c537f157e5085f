"""Families read from the components' own counters at scrape time: routers (in every
process), a replica's server, the controller's deployments.

Nothing here runs on the request path: each function reads state the component keeps
for its own work (queue lengths, in-flight counts, replica states, autoscaler inputs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from serval.observability import snapshot as snap

__all__ = ["controller_families", "replica_families", "router_families"]

_APP_DEP = ("application", "deployment")


def router_families(routers: dict[str, Any]) -> list[snap.Family]:
    """Queue lengths and rejections of this process's routers (``app/deployment`` keyed)."""
    queued, rejected = [], []
    for key, router in list(routers.items()):
        app, _, deployment = key.partition("/")
        queued.append(((app, deployment), float(router.queued)))
        for cause, n in router.rejected.items():
            rejected.append(((app, deployment, cause), float(n)))
    out = [snap.gauge("serval_router_queued_requests", _APP_DEP, queued)] if queued else []
    if rejected:
        out.append(snap.counter("serval_requests_rejected", (*_APP_DEP, "cause"), rejected))
    return out


def replica_families(server: Any) -> list[snap.Family]:
    """A replica's ongoing requests, processing latency and busy polling (``server``:
    ReplicaServer)."""
    out = [snap.gauge("serval_replica_ongoing_requests", (), [((), float(server.in_flight))])]
    table = server.latency
    if table is not None and table.series:
        out.append(
            snap.histogram(
                "serval_replica_processing_latency_seconds",
                ("route", "method"),
                table.bounds,
                table.items(),
            )
        )
    return out + busy_poll_families(server.busy_poll, "replica")


def busy_poll_families(poll: Any, component: str) -> list[snap.Family]:
    """Time a process spent busy polling and how its polls ended (``poll``: its
    :class:`~serval.transport.busy_poll.BusyPoll`; nothing when polling is off)."""
    if poll.window_s <= 0:
        return []
    ends = [
        ((component, "caught"), float(poll.caught)),
        ((component, "expired"), float(poll.expired)),
    ]
    return [
        snap.counter("serval_busy_poll_seconds", ("component",), [((component,), poll.seconds)]),
        snap.counter("serval_busy_polls", ("component", "outcome"), ends),
    ]


def placement_families(sent: dict[str, list[int]]) -> list[snap.Family]:
    """What the controller published to routers and proxies, by kind (``routes`` and
    ``target``: whole values; ``models``: placement deltas): ``sent`` is
    :attr:`Publisher.sent <serval.controller.publisher.Publisher.sent>`."""
    updates = [((kind,), float(n)) for kind, (n, _) in sent.items()]
    sizes = [((kind,), float(b)) for kind, (_, b) in sent.items()]
    return [
        snap.counter("serval_placement_updates", ("kind",), updates),
        snap.counter("serval_placement_update_bytes", ("kind",), sizes),
    ]


def controller_families(apps: Iterable[Any]) -> list[snap.Family]:
    """Replica counts by state, restarts and the autoscaling decision with its inputs
    (``apps``: the controller's Applications)."""
    states, targets, restarts = [], [], []
    ongoing, target_ongoing, lows, highs = [], [], [], []
    for app in list(apps):
        for dep in list(app.deployments.values()):
            key = (app.name, dep.name)
            counts = dep.replica_states()
            for state in ("STARTING", "RUNNING", "STOPPING"):
                states.append(((*key, state), float(counts.get(state, 0))))
            targets.append((key, float(dep.target_count)))
            restarts.append((key, float(dep.restarts)))
            scaler = dep.autoscaler
            if scaler is not None:
                cfg = scaler.config
                ongoing.append((key, float(sum(n for _, n in scaler.reports.values()))))
                target_ongoing.append((key, float(cfg.target_ongoing_requests)))
                lows.append((key, float(cfg.min_replicas)))
                highs.append((key, float(cfg.max_replicas)))
    out = [
        snap.gauge("serval_deployment_replicas", (*_APP_DEP, "state"), states),
        snap.gauge("serval_deployment_target_replicas", _APP_DEP, targets),
        snap.counter("serval_replica_restarts", _APP_DEP, restarts),
    ]
    if ongoing:
        out += [
            snap.gauge("serval_autoscaling_ongoing_requests", _APP_DEP, ongoing),
            snap.gauge("serval_autoscaling_target_ongoing_requests", _APP_DEP, target_ongoing),
            snap.gauge("serval_autoscaling_min_replicas", _APP_DEP, lows),
            snap.gauge("serval_autoscaling_max_replicas", _APP_DEP, highs),
        ]
    return out
