"""The proxy's request metrics: one histogram row per (route, method, status).

``observe`` is on the request path, so it is a tuple, a dict look-up, a bisect and two
additions; the counts, error counts and latency histogram are all read from the same
rows at scrape time.

Example (what :class:`serval.proxy.app.ProxyApp` does)::

    http = HttpMetrics()
    http.observe("app", "Model", "/model", "GET", 200, 0.0012)
    families = http.families()
"""

from __future__ import annotations

from serval.observability import snapshot as snap
from serval.observability.tables import LATENCY_BUCKETS_S, HistogramTable

__all__ = ["HTTP_LABELS", "HttpMetrics"]

HTTP_LABELS = ("application", "deployment", "route", "method", "status_code")


class HttpMetrics:
    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table = HistogramTable(LATENCY_BUCKETS_S)

    def observe(
        self, app: str, deployment: str, route: str, method: str, status: int, seconds: float
    ) -> None:
        self.table.observe((app, deployment, route, method, str(status)), seconds)

    def families(self) -> list[snap.Family]:
        rows = self.table.items()
        counts = [(key, sum(row[:-1])) for key, row in rows]
        errors = [(key, n) for key, n in counts if int(key[4]) >= 400]
        return [
            snap.counter("serval_http_requests", HTTP_LABELS, counts),
            snap.counter("serval_http_request_errors", HTTP_LABELS, errors),
            snap.histogram(
                "serval_http_request_latency_seconds", HTTP_LABELS, self.table.bounds, rows
            ),
        ]
