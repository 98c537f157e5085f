"""The proxy's gRPC and WebSocket metrics (its HTTP ones are in ``http.py``).

- gRPC ingress: ``serval_grpc_requests_total``, ``serval_grpc_request_errors_total``
  (status other than OK) and ``serval_grpc_request_latency_seconds``, labelled
  ``application``, ``deployment``, ``method`` (``package.Service/Method``) and
  ``status_code`` (the gRPC status name: ``OK``, ``NOT_FOUND``, …).
- WebSockets: ``serval_websocket_open_connections`` (open now),
  ``serval_websocket_connections_total`` (handshakes forwarded since start) and
  ``serval_websocket_connection_duration_seconds``, labelled ``application``,
  ``deployment`` and ``route``.

Each is a dict update per call or connection, read at scrape time (as ``http.py``).

Example::

    grpc = GrpcMetrics()
    grpc.observe("app", "Model", "demo.Model/Predict", "OK", 0.0021)
    sockets = WebSocketMetrics()
    sockets.opened(("app", "Chat", "/chat"))
    sockets.closed(("app", "Chat", "/chat"), 12.5)
"""

from __future__ import annotations

from serval.observability import snapshot as snap
from serval.observability.tables import LATENCY_BUCKETS_S, CounterTable, HistogramTable

__all__ = ["GRPC_LABELS", "WEBSOCKET_LABELS", "GrpcMetrics", "WebSocketMetrics"]

GRPC_LABELS = ("application", "deployment", "method", "status_code")
WEBSOCKET_LABELS = ("application", "deployment", "route")
# A WebSocket lives from a second to hours: its own buckets, not the request latencies'.
DURATION_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)


class GrpcMetrics:
    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table = HistogramTable(LATENCY_BUCKETS_S)

    def observe(self, app: str, deployment: str, method: str, code: str, seconds: float) -> None:
        self.table.observe((app, deployment, method, code), seconds)

    def families(self) -> list[snap.Family]:
        rows = self.table.items()
        counts = [(key, sum(row[:-1])) for key, row in rows]
        errors = [(key, n) for key, n in counts if key[3] != "OK"]
        return [
            snap.counter("serval_grpc_requests", GRPC_LABELS, counts),
            snap.counter("serval_grpc_request_errors", GRPC_LABELS, errors),
            snap.histogram(
                "serval_grpc_request_latency_seconds", GRPC_LABELS, self.table.bounds, rows
            ),
        ]


class WebSocketMetrics:
    __slots__ = ("durations", "open", "total")

    def __init__(self) -> None:
        self.open = CounterTable()  # goes down too: read as a gauge
        self.total = CounterTable()
        self.durations = HistogramTable(DURATION_BUCKETS_S)

    def opened(self, key: tuple[str, str, str]) -> None:
        self.open.inc(key)
        self.total.inc(key)

    def closed(self, key: tuple[str, str, str], seconds: float) -> None:
        self.open.inc(key, -1.0)
        self.durations.observe(key, seconds)

    def families(self) -> list[snap.Family]:
        return [
            snap.gauge("serval_websocket_open_connections", WEBSOCKET_LABELS, self.open.items()),
            snap.counter("serval_websocket_connections", WEBSOCKET_LABELS, self.total.items()),
            snap.histogram(
                "serval_websocket_connection_duration_seconds",
                WEBSOCKET_LABELS,
                self.durations.bounds,
                self.durations.items(),
            ),
        ]
