"""Logs, metrics and status output.

Metrics (``GET /-/metrics`` on the proxy port, Prometheus text format):

- ``tables.py``: counters and histograms cheap enough for the request path;
- ``families.py``: every family serval exports, its type and help text;
- ``http.py``, ``components.py``, ``models.py``: what the proxy, routers, replicas, the
  controller and the model caches export, read from their own counters at scrape time;
- ``process.py``: each process's sources and the registry of :mod:`serval.metrics`;
- ``snapshot.py``: one process's metrics as data (what crosses the transport);
- ``scrape.py``: the proxy asks the controller, which asks every replica
  (``CollectMetrics``, concurrently, with a timeout; late ones are left out);
- ``merge.py``: the snapshots into one text, per-model series for the top N models;
- ``summary.py``: :func:`~serval.observability.summary.instance_summary`, the same
  figures as a JSON-ready dict (per-route requests, errors and latency percentiles,
  replicas, deployments, the models × replicas heat map) for pages such as the
  dashboard: ``await instance_summary(proxy_app.ctx)`` in the proxy.

``SERVAL_METRICS=0`` switches request-path metrics off (the endpoint answers 404);
``SERVAL_METRICS_TOP_MODELS`` (default 100) sets N.
"""
