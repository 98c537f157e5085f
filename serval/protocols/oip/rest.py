"""OIP v2 over HTTP: a Starlette request in, a response out, for any ingress.

=======  ==================================================  =========================
GET      /v2                                                 server metadata
GET      /v2/health/live, /v2/health/ready                   200 while serving
GET      /v2/models/{name}[/versions/{v}]                    model metadata
GET      /v2/models/{name}[/versions/{v}]/ready              200, or 404 naming it
POST     /v2/models/{name}[/versions/{v}]/infer              inference (JSON or binary)
POST     /v2/repository/index                                the registry's models
POST     /v2/repository/models/{name}/load                   prewarm where it will serve
POST     /v2/repository/models/{name}/unload                 evict from every replica
=======  ==================================================  =========================

Mount it in an ingress deployment's ``__call__``::

    self.oip = OIPRest(OIPFrontend(lambda name: self.scorers))
    ...
    async def __call__(self, request):
        if self.oip.matches(request.url.path):
            return await self.oip(request)
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from serval.context import get_request_context
from serval.exceptions import (
    BadRequestError,
    NotFoundError,
    ServalError,
    http_status_for,
    public_message,
    retry_headers,
)
from serval.observability.logs_access import log_failure
from serval.protocols.oip.binary import HEADER
from serval.protocols.oip.frontend import OIPFrontend

__all__ = ["OIPRest"]

logger = logging.getLogger("serval.protocols.oip")


class OIPRest:
    """The REST protocol over an :class:`OIPFrontend`."""

    def __init__(self, frontend: OIPFrontend) -> None:
        self.frontend = frontend

    @staticmethod
    def matches(path: str) -> bool:
        return _v2_parts(path) is not None

    async def __call__(self, request: Request) -> Response:
        parts = _v2_parts(request.url.path) or []
        try:
            return await self._dispatch(request, parts)
        except ServalError as exc:
            return _error_response(request, exc)

    async def _dispatch(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        front = self.frontend
        if not parts and method == "GET":
            return JSONResponse(front.server_metadata())
        if parts in (["health", "live"], ["health", "ready"]) and method == "GET":
            return Response(status_code=200)
        if parts[:1] == ["models"] and len(parts) >= 2:
            name, rest = parts[1], parts[2:]
            version = None
            if rest[:1] == ["versions"] and len(rest) >= 2:
                version, rest = rest[1], rest[2:]
            if not rest and method == "GET":
                return JSONResponse(await front.model_metadata(name, version))
            if rest == ["ready"] and method == "GET":
                await front.model_ready(name, version)
                return Response(status_code=200)
            if rest == ["infer"] and method == "POST":
                return await self._infer(request, name, version)
        if parts == ["repository", "index"] and method == "POST":
            body = await _json_or_empty(request)
            return JSONResponse(await front.index(bool(body.get("ready", False))))
        if (
            len(parts) == 4
            and parts[:2] == ["repository", "models"]
            and parts[3] in ("load", "unload")
            and method == "POST"
        ):
            if parts[3] == "load":
                await front.load(parts[2])
            else:
                await front.unload(parts[2])
            return Response(status_code=200)
        raise NotFoundError(f"no OIP route {method} {request.url.path}")

    async def _infer(self, request: Request, name: str, version: str | None) -> Response:
        body, header_length = await self.frontend.infer_rest(
            name, version, await request.body(), request.headers.get(HEADER)
        )
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(
            body,
            media_type="application/octet-stream",
            headers={HEADER: str(header_length)},
        )


def _error_response(request: Request, exc: ServalError) -> Response:
    """The protocol's ``{"error": ...}`` body; logged as the replica logs an error that
    escapes a handler (a client error: one short line, no traceback)."""
    request_id = get_request_context().request_id
    log_failure(logger, exc, f"{request.method} {request.url.path} ({request_id})")
    return JSONResponse(
        {"error": public_message(exc, request_id)},
        http_status_for(exc),
        headers=retry_headers(exc) or None,
    )


def _v2_parts(path: str) -> list[str] | None:
    """The path's segments after ``/v2`` (None when it is not an OIP path)."""
    segments = [s for s in path.split("/") if s]
    try:
        at = segments.index("v2")
    except ValueError:
        return None
    return segments[at + 1 :]


async def _json_or_empty(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise BadRequestError(f"malformed JSON in the request body: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequestError("the request body must be a JSON object")
    return obj
