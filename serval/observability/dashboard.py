"""``/-/dashboard`` on the proxy: a live page of the instance, fed by ``/-/dashboard/data``.

The page (``dashboard.html``, plain HTML with inline CSS and JS: no build step, nothing
loaded from the internet) polls the JSON endpoint every two seconds and draws:
applications, deployments and replicas with their state; per route the request rate,
error rate and latency percentiles; for many-models deployments a heat map of models ×
replicas (resident, loading, hits, bytes, load time) with the hit ratio and the eviction
rate. Rates are differences between two polls, computed in the page.

The data comes from the controller's status (applications, deployments, every replica's
state) and :func:`serval.observability.summary.instance_summary` (the same per-process
figures ``/-/metrics`` serves; with metrics off, the heat map comes from the replicas'
model listings, the admin API's path). With an admin token set, ``/-/dashboard/data``
needs ``Authorization: Bearer <token>``; the page itself holds no data and asks for the
token (or takes it from the URL fragment, ``/-/dashboard#token=...``, which browsers
never send to the server), keeping it in the tab's session storage.
"""

from __future__ import annotations

import json
import os
import time
from functools import cache
from typing import Any

from serval._process import ProcessContext
from serval.exceptions import ServalError
from serval.observability.summary import instance_summary
from serval.proxy.admin import BearerAuth, list_models
from serval.transport.messages import GetStatus

Scope = dict[str, Any]

_HTML = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # Everything the page needs is inline: forbid anything else.
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"connect-src 'self'; img-src data:",
    ),
]
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


@cache
def page() -> bytes:
    with open(os.path.join(os.path.dirname(__file__), "dashboard.html"), "rb") as f:
        return f.read()


async def dashboard_data(ctx: ProcessContext) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data."""
    status = await ctx.controller.call(GetStatus(), timeout_s=30)
    try:
        summary = await instance_summary(ctx)
    except ServalError as exc:  # the figures are missing, the states still show
        summary = {"error": str(exc), "routes": [], "replicas": [], "models": {}}
    if not summary["models"].get("heat"):  # metrics off (SERVAL_METRICS=0): ask the replicas
        summary["models"] = {**summary["models"], "heat": await _heat_from_listing(ctx)}
    figures = {(r["application"], r["deployment"], r["replica"]): r for r in summary["replicas"]}
    applications = []
    for name, app in sorted(status["applications"].items()):
        deployments = []
        for dname, dep in sorted(app["deployments"].items()):
            replicas = [
                {
                    "replica": rid,
                    "state": state,
                    "ongoing": figures.get((name, dname, rid), {}).get("ongoing"),
                    "processed": figures.get((name, dname, rid), {}).get("processed"),
                }
                for rid, state in sorted(dep.get("replicas", {}).items())
            ]
            deployments.append(
                {
                    "name": dname,
                    "status": dep["status"],
                    "message": dep["message"][-300:],
                    "target_replicas": dep["target_replicas"],
                    "replica_states": dep["replica_states"],
                    "replicas": replicas,
                }
            )
        applications.append(
            {
                "name": name,
                "status": app["status"],
                "message": app["message"][-300:],
                "route_prefix": app["route_prefix"],
                "ingress": app["ingress"],
                "deployments": deployments,
            }
        )
    info = status.get("info", {})
    return {
        "time": summary.get("time", time.time()),
        "instance": {
            "runtime": info.get("runtime", ""),
            "http": f"{info.get('http_host', '')}:{info.get('http_port', '')}",
            "processes": summary.get("processes", {}),
        },
        "proxies": status.get("proxies", {}),
        "applications": applications,
        "routes": summary["routes"],
        "models": summary["models"],
        "error": summary.get("error"),
    }


async def _heat_from_listing(ctx: ProcessContext) -> list[dict[str, Any]]:
    """The heat map from the replicas' model listings (the admin API's path): what each
    replica holds now, with hits since the model loaded."""
    try:
        listing = await list_models(ctx)
    except ServalError:
        return []
    heat = []
    for key, replicas in sorted(listing.items()):
        app, _, deployment = key.partition("/")
        for replica, models in sorted(replicas.items()):
            for model_id, info in sorted(models.items()):
                loading = bool(info.get("loading"))
                heat.append(
                    {
                        "model_id": model_id,
                        "replica": replica,
                        "application": app,
                        "deployment": deployment,
                        "resident": 0.0 if loading else 1.0,
                        "loading": 1.0 if loading else 0.0,
                        "requests": float(info.get("hits", 0)),
                        "hits": float(info.get("hits", 0)),
                        "bytes": float(info.get("bytes", 0)),
                        "load_time_s": float(info.get("load_time_s", 0.0)),
                    }
                )
    return heat


class Dashboard:
    """ASGI app for ``/-/dashboard`` (the page) and ``/-/dashboard/data`` (its JSON)."""

    def __init__(self, ctx: ProcessContext, token: str | None) -> None:
        self.ctx = ctx
        self._data: Any = self._serve_data if not token else BearerAuth(self._serve_data, token)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope["path"].rstrip("/")
        if path == "/-/dashboard":
            await _respond(send, 200, _HTML, page())
        elif path == "/-/dashboard/data":
            await self._data(scope, receive, send)
        else:
            await _respond(send, 404, _JSON, b'{"error": "not found"}')

    async def _serve_data(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            body = json.dumps(await dashboard_data(self.ctx)).encode()
        except ServalError as exc:
            await _respond(send, 503, _JSON, json.dumps({"error": str(exc)}).encode())
            return
        await _respond(send, 200, _JSON, body)


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
