"""The admin API under ``/-/admin/``: models, pools (user_config), model operations.

Off unless a token is configured (``HTTPOptions(admin_token=...)`` or
``SERVAL_ADMIN_TOKEN``); every call needs ``Authorization: Bearer <token>``:
no header → 401, a wrong token → 403.

=======  ==============================================  ================================
GET      /-/admin/models                                 which replica holds which model
POST     /-/admin/models/{op}                            op: prewarm, pin, unpin, evict,
                                                          refresh; body {"app",
                                                          "deployment", "model_ids": [..]}
PUT      /-/admin/user_config                            body {"app", "deployment",
                                                          "user_config"}: reconfigure live
=======  ==============================================  ================================
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serval._process import ProcessContext
from serval.exceptions import ServalError, http_status_for
from serval.transport.messages import ListModels, ModelAdmin, SetUserConfig

MODEL_OPS = ("prewarm", "pin", "unpin", "evict", "refresh")


class BearerAuth:
    """ASGI layer: pass only requests that carry the admin token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                given = value
                break
        if given is None or not given.lower().startswith(b"bearer "):
            response: Response = JSONResponse(
                {"error": "the admin API needs 'Authorization: Bearer <token>'"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif not hmac.compare_digest(given[7:].strip(), self._token):
            response = JSONResponse({"error": "wrong admin token"}, 403)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


async def _body(request: Request, *fields: str) -> dict[str, Any]:
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise _Bad(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise _Bad("the body must be a JSON object")
    missing = [f for f in fields if f not in data]
    if missing:
        raise _Bad(f"missing field(s) {missing} in the body")
    return data


class _Bad(Exception):
    pass


async def list_models(ctx: ProcessContext) -> dict[str, Any]:
    """Which replica holds which model, with each model's hits, bytes, load time and pin:
    ``{"app/deployment": {replica: {model id: {...}}}}`` (the admin API's listing, and the
    dashboard's when metrics are off)."""
    held = await ctx.controller.call(ListModels(), timeout_s=60)
    out: dict[str, Any] = {}
    for key, replicas in held.items():
        app, _, deployment = key.partition("/")
        try:
            listing = await ctx.controller.call(
                ModelAdmin(app, deployment, "list", []), timeout_s=60
            )
        except ServalError:
            listing = {}  # gone meanwhile, or no replica answers
        out[key] = {
            replica: listing.get(replica)
            if isinstance(listing.get(replica), dict) and "error" not in listing[replica]
            else {m: {} for m in ids}
            for replica, ids in replicas.items()
        }
    return out


def build_admin_app(ctx: ProcessContext, token: str) -> Any:
    async def call(msg: Any) -> Response:
        try:
            return JSONResponse(await ctx.controller.call(msg, timeout_s=600))
        except ServalError as exc:
            return JSONResponse({"error": str(exc)}, http_status_for(exc))

    async def models(request: Request) -> Response:
        """``{"app/deployment": {replica: {model id: {"hits", "bytes", "pinned", ...}}}}``
        for every deployment whose replicas serve multiplexed models."""
        try:
            return JSONResponse(await list_models(ctx))
        except ServalError as exc:
            return JSONResponse({"error": str(exc)}, http_status_for(exc))

    async def model_op(request: Request) -> Response:
        op = request.path_params["op"]
        if op not in MODEL_OPS:
            return JSONResponse({"error": f"unknown operation {op!r}; one of {MODEL_OPS}"}, 404)
        try:
            body = await _body(request, "app", "deployment", "model_ids")
        except _Bad as exc:
            return JSONResponse({"error": str(exc)}, 400)
        ids = body["model_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return JSONResponse({"error": "model_ids must be a list of strings"}, 400)
        return await call(ModelAdmin(body["app"], body["deployment"], op, ids))

    async def user_config(request: Request) -> Response:
        try:
            body = await _body(request, "app", "deployment", "user_config")
        except _Bad as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return await call(SetUserConfig(body["app"], body["deployment"], body["user_config"]))

    app = Starlette(
        routes=[
            Route("/-/admin/models", models, methods=["GET"]),
            Route("/-/admin/models/{op}", model_op, methods=["POST"]),
            Route("/-/admin/user_config", user_config, methods=["PUT"]),
        ]
    )
    return BearerAuth(app, token)
