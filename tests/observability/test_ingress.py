"""The proxy's gRPC and WebSocket tables, as the scrape writes them (end to end:
tests/proxy/test_grpc_ingress.py and tests/proxy/test_websocket.py)."""

from __future__ import annotations

from serval.observability.ingress import GrpcMetrics, WebSocketMetrics
from serval.observability.merge import merge, render
from serval.observability.snapshot import Snapshot
from tests.observability._scrape import parse


def test_grpc_calls_count_errors_apart_from_ok() -> None:
    grpc = GrpcMetrics()
    for code in ("OK", "OK", "NOT_FOUND"):
        grpc.observe("app", "Model", "demo.Model/Predict", code, 0.002)
    m = parse(render(merge([Snapshot("proxy", {}, grpc.families())], 10)).decode())
    assert m.value("serval_grpc_requests_total") == 3
    assert m.value("serval_grpc_request_errors_total") == 1
    assert m.labels_of("serval_grpc_request_errors_total")[0]["status_code"] == "NOT_FOUND"
    assert m.value("serval_grpc_request_latency_seconds_sum") == 0.006


def test_websockets_open_close_and_last() -> None:
    sockets = WebSocketMetrics()
    key = ("app", "Chat", "/chat")
    sockets.opened(key)
    sockets.opened(key)
    sockets.closed(key, 30.0)
    m = parse(render(merge([Snapshot("proxy", {}, sockets.families())], 10)).decode())
    assert m.value("serval_websocket_open_connections", route="/chat") == 1
    assert m.value("serval_websocket_connections_total", route="/chat") == 2
    assert m.value("serval_websocket_connection_duration_seconds_bucket", le="60.0") == 1
    assert m.types["serval_websocket_open_connections"] == "gauge"
