"""The ingress side: one OIP operation at a time, routed to the deployment that serves
the model, with the model id as ``multiplexed_model_id`` (serval's model-aware routing,
exactly like the ``serve_multiplexed_model_id`` header). REST (:mod:`.rest`) and gRPC
(:mod:`.grpc`) both call it.

Names and versions map onto the registry: model ``tenant7`` is the model id
``tenant7`` (its latest version, or what the app decides, e.g. a canary), version ``3``
is ``tenant7@3``, and a version may be an alias (``tenant7@production``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serval.exceptions import ModelNotFoundError, ServalError
from serval.handle import DeploymentHandle
from serval.protocols.oip.binary import InferRequest
from serval.protocols.oip.tensors import Tensor

__all__ = ["SERVER_NAME", "OIPFrontend"]

SERVER_NAME = "serval"
MAX_CACHED_HANDLES = 4096  # (pool, model id) pairs whose infer handle is kept
EXTENSIONS = ["binary_tensor_data", "model_repository"]


class OIPFrontend:
    """OIP operations over deployments that mix in
    :class:`~serval.protocols.oip.serving.OIPModels`.

    ``route(name)``: the handle of the deployment serving model ``name``.
    ``model_id(name, version)``: the model id to load (default ``name`` or
    ``name@version``).
    """

    def __init__(
        self,
        route: Callable[[str], DeploymentHandle],
        model_id: Callable[[str, str | None], str] | None = None,
        *,
        version: str = "",
    ) -> None:
        self.route = route
        self._model_id = model_id
        self._infer_handles: dict[tuple[int, str, str], tuple[DeploymentHandle, DeploymentHandle]]
        self._infer_handles = {}
        self.server_version = version or _serval_version()

    def model_id(self, name: str, version: str | None) -> str:
        if not name or "@" in name or "/" in name:
            raise ModelNotFoundError(f"model {name!r} not found: not a model name")
        if self._model_id is not None:
            return self._model_id(name, version or None)
        return f"{name}@{version}" if version else name

    def _handle(self, name: str, version: str | None) -> DeploymentHandle:
        return self.route(name).options(multiplexed_model_id=self.model_id(name, version))

    def _infer_handle(self, name: str, version: str | None, method: str) -> DeploymentHandle:
        """``_handle(...).<method>``, kept per (pool, model id): the two option copies
        it takes are a noticeable part of an infer call's cost in the ingress."""
        pool = self.route(name)
        key = (id(pool), self.model_id(name, version), method)
        cached = self._infer_handles.get(key)
        if cached is None or cached[0] is not pool:
            if len(self._infer_handles) >= MAX_CACHED_HANDLES:
                self._infer_handles.clear()
            handle: DeploymentHandle = getattr(pool.options(multiplexed_model_id=key[1]), method)
            cached = self._infer_handles[key] = (pool, handle)
        return cached[1]

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": self.server_version, "extensions": EXTENSIONS}

    async def model_ready(self, name: str, version: str | None) -> str:
        """The version ready to serve (``ModelNotFoundError`` naming it if none)."""
        result: str = await self._handle(name, version).oip_ready.remote()
        return result

    async def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        result: dict[str, Any] = await self._handle(name, version).oip_metadata.remote()
        return result

    async def infer(
        self, name: str, version: str | None, request: InferRequest
    ) -> tuple[str, list[Tensor]]:
        result: tuple[str, list[Tensor]] = await self._infer_handle(
            name, version, "oip_infer"
        ).remote(request.inputs, request.outputs)
        return result

    async def infer_rest(
        self, name: str, version: str | None, body: bytes, header_length: str | None
    ) -> tuple[bytes, int | None]:
        """A REST infer body (JSON, or JSON then binary tensors) to the response body
        and its ``Inference-Header-Content-Length`` (None: JSON only); decoded and
        encoded in the replica that serves the model."""
        result: tuple[bytes, int | None] = await self._infer_handle(
            name, version, "oip_infer_rest"
        ).remote(body, header_length, name)
        return result

    async def load(self, name: str) -> str:
        """Load ``name`` where its requests will go (the repository's ``load``)."""
        result: str = await self._handle(name, None).oip_load.remote()
        return result

    async def unload(self, name: str) -> dict[str, Any]:
        """Evict every loaded id of ``name`` (any version) from every replica; a name
        that no replica holds and the registry lacks is ``ModelNotFoundError``."""
        from serval._process import current
        from serval.transport.messages import ListModels, ModelAdmin

        self.model_id(name, None)
        handle = self.route(name)
        ctx = current()
        held = await ctx.controller.call(ListModels(), timeout_s=60)
        key = f"{handle.app_name}/{handle.deployment_name}"
        loaded = {m for ms in held.get(key, {}).values() for m in ms if m.partition("@")[0] == name}
        if not loaded:
            await self.model_ready(name, None)  # raises ModelNotFoundError naming it
        ids = sorted({name} | loaded)
        await ctx.controller.call(
            ModelAdmin(handle.app_name, handle.deployment_name, "evict", ids), timeout_s=120
        )
        return {"unloaded": ids}

    async def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """The registry's models, ``READY`` where some replica holds them."""
        from serval._process import current
        from serval.transport.messages import ListModels

        handle = self.route("")
        names: list[str] = await handle.oip_names.remote()
        loaded: set[str] = set()
        try:
            held = await current().controller.call(ListModels(), timeout_s=60)
            for replicas in held.values():
                for ids in replicas.values():
                    loaded.update(m.partition("@")[0] for m in ids)
        except ServalError:
            pass
        out = []
        for n in names:
            ready = n in loaded
            if ready_only and not ready:
                continue
            entry: dict[str, Any] = {"name": n, "state": "READY" if ready else "UNAVAILABLE"}
            if not ready:
                entry["reason"] = "not loaded (loads on its first request)"
            out.append(entry)
        return out


def _serval_version() -> str:
    try:
        from importlib.metadata import version

        return version("serval")
    except Exception:
        return "0"
