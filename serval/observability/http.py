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

from bisect import bisect_left

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
        # HistogramTable.observe inlined: one call less on every request. The status
        # stays an int here (no str() per request); families() turns it into a label.
        series = self.table.series
        key = (app, deployment, route, method, status)
        row = series.get(key)  # type: ignore[arg-type]
        if row is None:
            row = series[key] = [0.0] * (len(self.table.bounds) + 2)  # type: ignore[index]
        row[bisect_left(self.table.bounds, seconds)] += 1
        row[-1] += seconds

    def families(self) -> list[snap.Family]:
        # keys hold the status as an int (no str() per request): labels want text
        rows = [((*key[:4], str(key[4])), row) for key, row in self.table.items()]
        counts = [(key, sum(row[:-1])) for key, row in rows]
        errors = [(key, n) for key, n in counts if int(key[4]) >= 400]
        return [
            snap.counter("serval_http_requests", HTTP_LABELS, counts),
            snap.counter("serval_http_request_errors", HTTP_LABELS, errors),
            snap.histogram(
                "serval_http_request_latency_seconds", HTTP_LABELS, self.table.bounds, rows
            ),
        ]
