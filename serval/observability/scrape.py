"""Gathering the instance's metrics for ``GET /-/metrics``, off the request path.

::

    proxy ──CollectMetrics──▶ controller ──CollectMetrics──▶ every RUNNING replica
      │ (its own snapshot,       │ (its own snapshot)          (snapshot read on the loop,
      │  meanwhile)              │ gathers concurrently,        encoded in a thread)
      │                          │ each within timeout_s
      ◀──────── Ok([bytes, …]) ──┘
      decode + merge + render in a thread → text

A replica that is starting, restarting or slower than the timeout is left out of that
scrape (and so is the controller, when it cannot be reached): the scrape still answers.

``install_proxy`` / ``install_replica`` / ``install_controller`` add each component's
sources to its process's :class:`~serval.observability.process.ProcessMetrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from serval._env import read_env
from serval.exceptions import ServalError
from serval.observability.components import (
    busy_poll_families,
    controller_families,
    placement_families,
    replica_families,
    router_families,
)
from serval.observability.merge import merge, render
from serval.observability.models import model_families, model_table
from serval.observability.process import process_metrics
from serval.observability.snapshot import Snapshot, decode, encode
from serval.transport.connection import Connection
from serval.transport.messages import CollectMetrics, ErrorReply, Ok

__all__ = [
    "SCRAPE_TIMEOUT_S",
    "answer_controller",
    "answer_replica",
    "gather",
    "install_controller",
    "install_proxy",
    "install_replica",
    "metrics_text",
]

logger = logging.getLogger("serval.observability")

SCRAPE_TIMEOUT_S = 2.0  # the proxy waits this long for the controller's answer
REPLICA_TIMEOUT_S = 1.0  # the controller waits this long for each replica


# -- what each process exports ----------------------------------------------------------


def install_proxy(app: Any) -> None:
    """A proxy's families: its HTTP table (when metrics are on) and its routers."""
    metrics = process_metrics()
    metrics.identify("proxy")
    if app.http_metrics is not None:
        metrics.add_source("http", app.http_metrics.families)
        metrics.add_source("grpc", app.grpc_metrics.families)
        metrics.add_source("websocket", app.ws_metrics.families)
    metrics.add_source("routers", lambda: router_families(app.ctx.routers))
    metrics.add_source("busy_poll", lambda: busy_poll_families(app.busy_poll, "proxy"))


def install_replica(server: Any) -> None:
    """A replica's families (``server``: the ReplicaServer, once initialized)."""
    from serval import _process

    metrics = process_metrics()
    metrics.identify(
        "replica",
        application=server.app_name,
        deployment=server.deployment,
        replica=server.replica_id,
    )
    metrics.add_source("replica", lambda: replica_families(server))
    metrics.add_source("routers", lambda: router_families(_process.current().routers))
    metrics.add_source("models", model_families)
    metrics.set_model_source(model_table)


def install_controller(controller: Any) -> None:
    metrics = process_metrics()
    metrics.identify("controller")
    metrics.add_source("controller", lambda: controller_families(controller.apps.values()))
    metrics.add_source("placement", lambda: placement_families(controller.publisher.sent))


# -- answering CollectMetrics -------------------------------------------------------------


async def answer_replica() -> bytes:
    """This replica's snapshot, encoded (read on the loop, encoded in a thread)."""
    snapshot = process_metrics().snapshot()
    return await asyncio.to_thread(encode, snapshot)


async def answer_controller(connections: Iterable[Connection], timeout_s: float) -> list[bytes]:
    """The controller's snapshot and those of the replicas on ``connections`` that
    answer within ``timeout_s`` (asked concurrently)."""
    own = encode(process_metrics().snapshot())
    answers = await asyncio.gather(*(_ask(conn, timeout_s) for conn in connections))
    return [own, *(a for a in answers if a is not None)]


async def _ask(conn: Connection, timeout_s: float) -> bytes | None:
    if conn.closed:
        return None
    stream = conn.open(CollectMetrics(timeout_s))
    try:
        reply = await asyncio.wait_for(stream.receive(), timeout_s)
    except asyncio.TimeoutError:
        stream.cancel()
        return None
    if isinstance(reply, Ok) and isinstance(reply.value, bytes):
        return reply.value
    if isinstance(reply, ErrorReply) and reply.kind != "unavailable":
        logger.debug("a replica could not give its metrics: %s", reply.message)
    return None


# -- the proxy's side ---------------------------------------------------------------------


async def gather(ctx: Any, timeout_s: float = SCRAPE_TIMEOUT_S) -> list[Snapshot]:
    """Every process's snapshot that arrived in time: this process's first, then the
    controller's and the replicas' (``ctx``: this process's ProcessContext)."""
    own = process_metrics().snapshot()
    try:
        answers = await ctx.controller.call(
            CollectMetrics(min(REPLICA_TIMEOUT_S, timeout_s / 2)), timeout_s=timeout_s
        )
    except ServalError as exc:
        logger.warning("metrics: the controller did not answer (%s); proxy metrics only", exc)
        answers = []
    decoded = await asyncio.to_thread(_decode_all, answers)
    return [own, *decoded]


def _decode_all(answers: list[Any]) -> list[Snapshot]:
    out = []
    for data in answers:
        try:
            out.append(decode(data))
        except Exception as exc:  # one bad answer must not cost the whole scrape
            logger.warning("metrics: dropping an undecodable snapshot: %s", exc)
    return out


async def metrics_text(ctx: Any, top_n: int | None = None) -> bytes:
    """The whole instance's metrics in Prometheus text format (merged in a thread)."""
    started = time.perf_counter()
    snapshots = await gather(ctx)
    gathered = time.perf_counter()
    n = read_env().metrics_top_models if top_n is None else top_n
    text = await asyncio.to_thread(lambda: render(merge(snapshots, n)))
    logger.debug(
        "scrape: %d processes gathered in %.1f ms, merged and written in %.1f ms",
        len(snapshots),
        1000 * (gathered - started),
        1000 * (time.perf_counter() - gathered),
    )
    return text
