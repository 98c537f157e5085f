"""This process's metrics: what it counts, and its snapshot when the proxy asks.

Every serval process (proxy, controller, replica) has one :class:`ProcessMetrics`
(:func:`process_metrics`). Components add *sources* — functions that read counters the
component keeps anyway and turn them into families — so nothing is computed until a
scrape; the user's :mod:`serval.metrics` live in its prometheus-client ``registry``.
The tables below are shared by code that has no component object to hang them on
(handles, model loads, batching); each costs a dict update per event.

``SERVAL_METRICS=0`` turns the request-path recording off (:func:`enabled`); the
endpoint then answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client.registry import CollectorRegistry

from serval._env import read_env
from serval.observability import snapshot as snap
from serval.observability.tables import (
    BATCH_SIZE_BUCKETS,
    LOAD_BUCKETS_S,
    CounterTable,
    HistogramTable,
)
from serval.transport.auth import rejected_peers_total

__all__ = [
    "BATCH_SIZES",
    "HANDLE_CALLS",
    "LOAD_LATENCY",
    "ProcessMetrics",
    "enabled",
    "process_metrics",
]

logger = logging.getLogger("serval.observability")

Source = Callable[[], Iterable[snap.Family]]
ModelSource = Callable[[], tuple[list[str], bytes]]  # packed rows (snapshot.py)

HANDLE_CALLS = CounterTable()  # (application, deployment, method)
LOAD_LATENCY = HistogramTable(LOAD_BUCKETS_S)  # (tier,)
BATCH_SIZES = HistogramTable(BATCH_SIZE_BUCKETS)  # (function,)

_ENABLED: bool | None = None


def enabled() -> bool:
    """Whether this process records request-path metrics (``SERVAL_METRICS``)."""
    global _ENABLED
    if _ENABLED is None:
        _ENABLED = read_env().metrics
    return _ENABLED


class ProcessMetrics:
    """The sources and the user registry of one process (module docs)."""

    def __init__(self) -> None:
        self.kind = "driver"
        self.labels: dict[str, str] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self._sources: dict[str, Source] = {"shared": _shared_tables}
        self._models: ModelSource | None = None

    def identify(self, kind: str, **labels: str) -> None:
        """Say what this process is (``proxy``, ``controller``, ``replica``) and the
        labels its samples get (a replica's application, deployment and replica id)."""
        self.kind = kind
        self.labels = labels

    def add_source(self, name: str, source: Source) -> None:
        """Read ``source`` at every snapshot; a second source of the same ``name``
        replaces the first (a component made again in the same process)."""
        self._sources[name] = source

    def set_model_source(self, source: ModelSource) -> None:
        self._models = source

    def snapshot(self) -> snap.Snapshot:
        """Read every source now (on the event loop that owns the counters)."""
        families: list[snap.Family] = []
        for source in list(self._sources.values()):
            try:
                families.extend(source())
            except Exception:  # a broken source must not cost the other families
                logger.exception("metrics source %r failed", source)
        families.extend(snap.from_registry(self.registry))
        ids: list[str] = []
        values = b""
        if self._models is not None:
            try:
                ids, values = self._models()
            except Exception:
                logger.exception("model metrics source failed")
        return snap.Snapshot(self.kind, dict(self.labels), families, ids, values)


def _shared_tables() -> list[snap.Family]:
    out = []
    rejected = rejected_peers_total()
    if rejected:  # peers that failed the instance handshake (serval/transport/auth.py)
        out.append(snap.counter("serval_transport_rejected_peers", (), [((), rejected)]))
    if HANDLE_CALLS.counts:
        out.append(
            snap.counter(
                "serval_handle_requests",
                ("application", "deployment", "method"),
                HANDLE_CALLS.items(),
            )
        )
    if LOAD_LATENCY.series:
        out.append(
            snap.histogram(
                "serval_model_load_latency_seconds",
                ("tier",),
                LOAD_LATENCY.bounds,
                LOAD_LATENCY.items(),
            )
        )
    if BATCH_SIZES.series:
        out.append(
            snap.histogram(
                "serval_batch_size", ("function",), BATCH_SIZES.bounds, BATCH_SIZES.items()
            )
        )
    return out


_current = ProcessMetrics()


def process_metrics() -> ProcessMetrics:
    """This process's :class:`ProcessMetrics`."""
    return _current
