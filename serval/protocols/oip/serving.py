"""The replica's side: :class:`OIPModels`, a mixin for a deployment whose
``get_model(self, model_id)`` is ``@serval.multiplexed``.

Its methods are called through a deployment handle with ``multiplexed_model_id`` set
(so serval's model-aware routing picks the replica that holds the model, exactly as
for the ``serve_multiplexed_model_id`` header), by :class:`~serval.protocols.oip.
frontend.OIPFrontend`::

    @serval.deployment
    class Scorer(OIPModels):
        @serval.multiplexed(max_num_models_per_replica=64)
        async def get_model(self, model_id: str):
            return await serval.models.load(model_id)
"""

from __future__ import annotations

import asyncio
import posixpath
from typing import Any

from serval.context import get_multiplexed_model_id
from serval.protocols.oip.batching import DEFAULT_MAX_ROWS, InferBatcher
from serval.protocols.oip.binary import encode_response, parse_request
from serval.protocols.oip.metadata import METADATA_FILE, ModelMetadata, metadata_of, parse_metadata
from serval.protocols.oip.tensors import Tensor

__all__ = ["OIPModels"]


class OIPModels:
    """Mixin: OIP inference, metadata and readiness on the models ``get_model`` loads.

    Infer calls for one model that are ready together run as one call of the model
    (:mod:`~serval.protocols.oip.batching`); ``oip_max_batch_rows`` bounds such a
    batch, 0 turns batching off (set it on the class or in ``__init__``)."""

    get_model: Any  # the deployment's @serval.multiplexed method
    oip_max_batch_rows: int = DEFAULT_MAX_ROWS

    async def oip_infer(
        self, inputs: list[Tensor], outputs: list[str] | None
    ) -> tuple[str, list[Tensor]]:
        """``(model version, output tensors)`` for the request's model."""
        model_id = get_multiplexed_model_id()
        model = await self.get_model(model_id)
        version = _version(model_id, model)
        cached = self.__dict__.get("_oip_cache")  # per request: no coroutine on a hit
        meta = cached.get((model_id.partition("@")[0], version)) if cached else None
        if meta is None:
            meta = await self._oip_meta(model_id, version, model)
        batcher = self.__dict__.get("_oip_batcher")
        if batcher is None:
            batcher = self.__dict__["_oip_batcher"] = InferBatcher(self.oip_max_batch_rows)
        return version, await batcher.infer(model, meta, inputs, outputs)

    async def oip_infer_rest(
        self, body: bytes, header_length: str | None, name: str
    ) -> tuple[bytes, int | None]:
        """A REST infer call, bytes in and bytes out (see
        :func:`~serval.protocols.oip.binary.parse_request`): the ingress forwards the
        body, this replica decodes it, runs the model and encodes the answer, so the
        tensors are converted once, where the model runs, and cross the process
        boundary as bytes (not as pickled arrays, twice)."""
        request = parse_request(body, header_length)
        version, outputs = await self.oip_infer(request.inputs, request.outputs)
        return encode_response(request, name, version, outputs)

    async def oip_infer_grpc(self, raw: bytes) -> bytes:
        """A gRPC ``ModelInfer`` call, serialized message in and out: the proxy sends it
        here as it came (:mod:`serval.proxy.model_routes`), this replica decodes it, runs
        the model and encodes the ``ModelInferResponse``."""
        from serval.protocols.oip.grpc import decode_inputs, infer_response, parse_infer_request

        request = parse_infer_request(raw)
        requested = [o.name for o in request.outputs] or None
        version, outputs = await self.oip_infer(decode_inputs(request), requested)
        response = infer_response(request.model_name, version, request.id, outputs)
        return bytes(response.SerializeToString())

    async def oip_metadata(self) -> dict[str, Any]:
        """The model's metadata (loads it: metadata comes from the model itself)."""
        model_id = get_multiplexed_model_id()
        model = await self.get_model(model_id)
        version = _version(model_id, model)
        meta = await self._oip_meta(model_id, version, model)
        name = model_id.partition("@")[0]
        return meta.to_json(name, await _versions(name) or [version])

    async def oip_ready(self) -> str:
        """The version the request's model id names (``ModelNotFoundError`` if none)."""
        model_id = get_multiplexed_model_id()
        store = _store()
        if store is None:
            return _version(model_id, await self.get_model(model_id))
        return str((await store.resolve(model_id)).version)

    async def oip_load(self) -> str:
        """Load the request's model here now (the repository extension's ``load``)."""
        model_id = get_multiplexed_model_id()
        return _version(model_id, await self.get_model(model_id))

    async def oip_names(self) -> list[str]:
        """Every model name the registry holds (the repository index)."""
        store = _store()
        registry = getattr(store, "registry", None)
        fs, root = getattr(registry, "fs", None), getattr(registry, "root", None)
        if fs is None or root is None:
            return []

        def names() -> list[str]:
            entries = fs.ls(root, detail=True)
            found = [
                posixpath.basename(e["name"].rstrip("/"))
                for e in entries
                if e.get("type") == "directory"
            ]
            return sorted(n for n in found if not n.startswith("."))

        return await asyncio.to_thread(names)

    async def _oip_meta(self, model_id: str, version: str, model: Any) -> ModelMetadata:
        cache: dict[tuple[str, str], ModelMetadata] = self.__dict__.setdefault("_oip_cache", {})
        name = model_id.partition("@")[0]
        key = (name, version)
        meta = cache.get(key)
        if meta is None:
            declared = await _metadata_file(name, version)
            meta = parse_metadata(declared) if declared is not None else metadata_of(model)
            if len(cache) > 4096:
                cache.clear()
            cache[key] = meta
        return meta


def _store() -> Any:
    try:
        import serval.models

        return serval.models.store()
    except Exception:  # no store configured in this process
        return None


def _version(model_id: str, model: Any) -> str:
    store = _store()
    ref = store.served_version(model_id) if store is not None else None
    if ref is not None:
        return str(ref.version)
    _, _, selector = model_id.partition("@")
    return str(getattr(model, "version", None) or selector or "")


async def _versions(name: str) -> list[str]:
    store = _store()
    if store is None:
        return []
    try:
        return list(await store.registry.versions(name))
    except Exception:
        return []


async def _metadata_file(name: str, version: str) -> bytes | None:
    """``oip.json`` beside the model (version directory, else model directory)."""
    store = _store()
    registry = getattr(store, "registry", None)
    fs, root = getattr(registry, "fs", None), getattr(registry, "root", None)
    if fs is None or root is None:
        return None

    def read() -> bytes | None:
        for path in (
            posixpath.join(root, name, version, METADATA_FILE),
            posixpath.join(root, name, METADATA_FILE),
        ):
            try:
                return bytes(fs.cat_file(path))
            except FileNotFoundError:
                continue
        return None

    return await asyncio.to_thread(read)
