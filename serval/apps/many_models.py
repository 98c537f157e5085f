"""The many-models application: thousands of tenant models behind one endpoint.

The "Dynamic Many Models Online Serving" design, on serval::

    POST /score                  {"tenant": "tenant7", "data": [[5.1, 3.5, 1.4, 0.2], ...]}
      → {"tenant", "prediction", "deployment", "version", "alias", "model", "replica"}
                                 and headers serval-model-version / serval-model-alias
    POST /update_dedicated_pool  {"mapping": {"tenant7": "pool1", "tenant9": null}}
      → tenants are prewarmed in their new pool, then traffic moves
    GET  /pools                  the routing table and the pools

A ``Dispatcher`` (the ingress) validates requests and picks the pool of the tenant:
a dedicated pool when the routing table maps it (exact ids or ``fnmatch`` patterns),
else the shared pool. Each pool is a ``Scorer`` deployment whose replicas keep hot
models in memory (``@serval.multiplexed``), behind a shared warm tier and the
registry (``serval.models``); serval's routers send a tenant to the replica that
already holds its model. The routing table is the Dispatcher's ``user_config``:
changing it reconfigures every Dispatcher replica in place, no restart.

Run it: ``serval run serval.apps.many_models:app --registry /path/or/url`` or, from
Python, ``serval.run(build_app(ManyModelsConfig(registry=...)))``. ``make run`` runs
:mod:`serval.apps.many_models_demo` (generated models, a Zipf burst, figures).
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import serval
from serval import context as serval_context
from serval.config import _Options, validated
from serval.deployment import Application
from serval.exceptions import (
    BadRequestError,
    ConfigError,
    ServalError,
    http_status_for,
    public_message,
    retry_headers,
)
from serval.handle import DeploymentHandle
from serval.models.pool_routing import PoolRouting, is_pattern, publish_model_routes
from serval.protocols.oip import OIPFrontend, OIPModels, OIPRest
from serval.protocols.oip.batching import DEFAULT_MAX_ROWS
from serval.protocols.oip.grpc import OIPGrpcMethods
from serval.transport.messages import ModelCanaryRoute, ModelRoutes

SHARED = "shared"


class ManyModelsConfig(_Options):
    """Everything the application needs; every field has a working default but
    ``registry``."""

    registry: str
    warm: str | None = None  # "disk:/dir" (default: serval.models' own), "redis://...", "none"
    shared_replicas: int = Field(2, ge=1)
    pools: dict[str, int] = Field(default_factory=dict)  # dedicated pool → replicas
    mapping: dict[str, str] = Field(default_factory=dict)  # tenant (or pattern) → pool
    max_models_per_replica: int = Field(64, ge=1)
    max_bytes: str | int = "1GiB"
    max_ongoing_requests: int = Field(32, ge=1)
    watch_interval_s: float = Field(30.0, ge=0)  # check the registry for new versions
    oip_max_batch_rows: int = Field(DEFAULT_MAX_ROWS, ge=0)  # OIP calls run together; 0: off


@serval.deployment(graceful_shutdown_wait_loop_s=0.5)
class Scorer(OIPModels):
    """One pool: replicas that load tenant models on demand and keep the hot ones
    (and answer OIP v2 calls on them: :class:`~serval.protocols.oip.OIPModels`)."""

    def __init__(self, pool: str, config: ManyModelsConfig) -> None:
        import serval.models

        self.pool = pool
        self.oip_max_batch_rows = config.oip_max_batch_rows
        serval.models.configure(
            registry=config.registry,
            watch_interval_s=config.watch_interval_s,
            **({"warm": config.warm} if config.warm else {}),
        )
        serval.models.cache_of(self.get_model).resize(
            max_models=config.max_models_per_replica, max_bytes=config.max_bytes
        )

    @serval.multiplexed(max_num_models_per_replica=64)  # loads bounded by memory: no cap
    async def get_model(self, model_id: str) -> Any:
        import serval.models
        from serval.apps._tenants import as_model

        return as_model(await serval.models.load(model_id))

    async def score(self, data: list[list[float]]) -> dict[str, Any]:
        model_id = serval.get_multiplexed_model_id()
        tenant = model_id.partition("@")[0]
        model = await self.get_model(model_id)
        served = serval_context._served_model_record()  # the version get_model returned
        try:
            prediction = model.predict(data)
        except ValueError as exc:
            raise BadRequestError(f"'data' does not fit the model of {tenant!r}: {exc}") from None
        return {
            "tenant": tenant,
            "prediction": [int(p) if float(p).is_integer() else float(p) for p in prediction],
            "deployment": self.pool,
            # The registry's version that answered ("2"), the alias it was reached
            # through ("latest", "production"; None for an explicit version) and both.
            "version": served.version.rpartition("@")[2]
            if served.version
            else getattr(model, "version", None),
            "alias": served.alias,
            "model": served.version,
            "replica": serval.get_replica_context().replica_id.unique_id,
        }

    async def prewarm(self) -> str:
        """Load the request's tenant model now (called before traffic moves here)."""
        await self.get_model(serval.get_multiplexed_model_id())
        return self.pool


@serval.deployment(graceful_shutdown_wait_loop_s=0.5)
class Dispatcher(OIPGrpcMethods):
    """The ingress: validates, picks the tenant's pool, forwards with the model id
    (for ``/score``, OIP REST ``/v2/...`` and, through the proxy, OIP gRPC)."""

    def __init__(self, pools: dict[str, DeploymentHandle], shared: DeploymentHandle) -> None:
        self.pools = pools
        self.shared = shared
        self.canaries: dict[str, ModelCanary] = {}
        self.routing = PoolRouting({}, {}, pools, SHARED)
        # OIP v2 (/v2/...): model name -> the tenant's pool, version -> tenant@version.
        self.oip_frontend = OIPFrontend(lambda n: self._handle(self.pool_of(n)), self._oip_id)
        self.oip = OIPRest(self.oip_frontend)

    @property
    def mapping(self) -> dict[str, str]:
        return self.routing.mapping

    def _oip_id(self, name: str, version: str | None) -> str:
        return f"{name}@{version}" if version else self.model_id_of(name)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """``{"mapping": {tenant or pattern: pool}, "model_canaries": {tenant: {...}}}``;
        a config without ``model_canaries`` (``serval models pools``) keeps them. The
        table is then published for the proxies, which route OIP infer calls with it
        (straight to the pool's replica that holds the model); this returns once they
        do, so a changed mapping is in force everywhere when the change is answered."""
        if "model_canaries" in config:
            self.canaries = {
                t: ModelCanary.model_validate(c) for t, c in config["model_canaries"].items()
            }
        self.routing = PoolRouting(config.get("mapping", {}), self.canaries, self.pools, SHARED)
        await publish_model_routes(self._model_routes())

    def _model_routes(self) -> ModelRoutes:
        deployments = {p: h.deployment_name for p, h in self.pools.items()}
        deployments[SHARED] = self.shared.deployment_name
        return ModelRoutes(
            "oip_infer_rest",
            deployments,
            SHARED,
            dict(self.routing.mapping),
            {t: ModelCanaryRoute(c.version, c.weight, c.stable) for t, c in self.canaries.items()},
            "oip_infer_grpc",
        )

    def model_id_of(self, tenant: str) -> str:
        """The model id a request for ``tenant`` loads: ``tenant`` (its latest version),
        or ``tenant@<version>`` for the share of its traffic a per-model canary takes."""
        return self.routing.model_id_of(tenant)

    def pool_of(self, tenant: str) -> str:
        return self.routing.pool_of(tenant)

    def _handle(self, pool: str) -> DeploymentHandle:
        return self.shared if pool == SHARED else self.pools[pool]

    async def __call__(self, request: Request) -> Response:
        if "/v2" in request.url.path and self.oip.matches(request.url.path):
            return await self.oip(request)
        path = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if request.method == "POST" and path == "score":
                answer = await self.score(await _json(request))
                return JSONResponse(answer, headers=_version_headers(answer))
            if request.method == "POST" and path == "update_dedicated_pool":
                return JSONResponse(await self.update_pools(await _json(request)))
            if request.method == "POST" and path == "model_canary":
                return JSONResponse(await self.set_canary(await _json(request)))
            if request.method == "GET" and path == "pools":
                return JSONResponse(
                    {
                        "mapping": self.mapping,
                        "pools": sorted(self.pools),
                        "model_canaries": {t: c.model_dump() for t, c in self.canaries.items()},
                    }
                )
        except ServalError as exc:  # a model that raised: no remote traceback to the client
            request_id = serval_context.get_request_context().request_id
            return JSONResponse(
                {"error": public_message(exc, request_id)},
                http_status_for(exc),
                headers=retry_headers(exc) or None,
            )
        return JSONResponse(
            {
                "error": f"no route {request.method} {request.url.path}; try "
                "POST /score, POST /update_dedicated_pool, POST /model_canary, GET /pools, "
                "/v2/... (Open Inference Protocol)"
            },
            404,
        )

    async def score(self, body: dict[str, Any]) -> dict[str, Any]:
        tenant = body.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise BadRequestError("field 'tenant' must be a non-empty string")
        data = body.get("data")
        if (
            not isinstance(data, list)
            or not data
            or not all(
                isinstance(r, list) and all(isinstance(v, int | float) for v in r) for r in data
            )
        ):
            raise BadRequestError("field 'data' must be a non-empty list of rows of numbers")
        handle = self._handle(self.pool_of(tenant))
        model_id = self.model_id_of(tenant)
        result: dict[str, Any] = await handle.options(multiplexed_model_id=model_id).score.remote(
            data
        )
        return result

    async def set_canary(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"tenant": t, "version": v, "weight": w, "stable": s}``: send ``w`` of
        ``t``'s traffic to version ``v`` and the rest to ``s`` (a version or alias;
        omitted: the latest), both prewarmed first; ``weight`` 0 ends the canary."""
        tenant = body.get("tenant")
        if not isinstance(tenant, str) or not tenant or "@" in tenant:
            raise BadRequestError("field 'tenant' must be a tenant name (no '@version')")
        try:
            canary = ModelCanary.model_validate(
                {k: body.get(k) for k in ("version", "weight", "stable")}
            )
        except pydantic.ValidationError as exc:
            raise BadRequestError(_first_error(exc)) from None
        canaries = {t: c.model_dump() for t, c in self.canaries.items()}
        if canary.weight == 0:
            canaries.pop(tenant, None)
        else:
            # Unknown versions fail here (404 naming them), before any traffic moves.
            handle = self._handle(self.pool_of(tenant))
            for selector in (canary.version, canary.stable):
                model_id = f"{tenant}@{selector}" if selector else tenant
                await handle.options(multiplexed_model_id=model_id).prewarm.remote()
            canaries[tenant] = canary.model_dump()
        await self._publish(self.mapping, canaries)
        return {"model_canaries": canaries}

    async def update_pools(self, body: dict[str, Any]) -> dict[str, Any]:
        mapping = body.get("mapping")
        if not isinstance(mapping, dict):
            raise BadRequestError("field 'mapping' must be an object of tenant → pool")
        unknown = sorted({p for p in mapping.values() if p is not None and p not in self.pools})
        if unknown:
            raise BadRequestError(
                f"field 'mapping' names unknown pool(s) {unknown}; pools: {sorted(self.pools)}"
            )
        new = {**self.mapping, **{t: p for t, p in mapping.items() if p is not None}}
        for tenant, pool in mapping.items():
            if pool is None:
                new.pop(tenant, None)
        prewarmed = []
        for tenant, pool in mapping.items():
            if pool is not None and not is_pattern(tenant):
                await self._handle(pool).options(multiplexed_model_id=tenant).prewarm.remote()
                prewarmed.append(tenant)
        await self._publish(new, {t: c.model_dump() for t, c in self.canaries.items()})
        return {"mapping": new, "prewarmed": prewarmed}

    async def _publish(self, mapping: dict[str, str], canaries: dict[str, Any]) -> None:
        """The new tables become this deployment's ``user_config``: every Dispatcher
        replica gets them through ``reconfigure()``, no restart."""
        ctx = serval.get_replica_context()
        await serval.api.update_user_config_async(
            ctx.app_name, ctx.deployment, {"mapping": mapping, "model_canaries": canaries}
        )


_VERSION = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$"  # a version or an alias


class ModelCanary(pydantic.BaseModel):
    """A per-model canary: ``weight`` of a tenant's requests go to ``version``, the rest
    to ``stable`` (a version or alias; ``None``: the latest version)."""

    version: str = Field(pattern=_VERSION)
    weight: float = Field(ge=0, le=1)
    stable: str | None = Field(None, pattern=_VERSION)


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    return f"field {field!r}: {err['msg']}"


def _version_headers(answer: dict[str, Any]) -> dict[str, str]:
    """``serval-model-version`` (``tenant7@2``) and ``serval-model-alias``, as a
    ``@serval.multiplexed`` deployment answering HTTP itself sends them."""
    headers: dict[str, str] = {}
    if answer.get("model"):
        headers["serval-model-version"] = str(answer["model"])
    if answer.get("alias"):
        headers["serval-model-alias"] = str(answer["alias"])
    return headers


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON in the request body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    return body


def build_app(config: ManyModelsConfig | dict[str, Any]) -> Application:
    """The application for ``config`` (pass it to ``serval.run``)."""
    cfg = validated(ManyModelsConfig, config, "many_models")
    for tenant, pool in cfg.mapping.items():
        if pool not in cfg.pools:
            raise ConfigError(
                f"mapping sends {tenant!r} to unknown pool {pool!r}; pools: {sorted(cfg.pools)}"
            )

    def scorer(pool: str, replicas: int) -> Application:
        return Scorer.options(  # type: ignore[attr-defined, no-any-return]
            name=f"pool_{pool}" if pool != SHARED else SHARED,
            num_replicas=replicas,
            max_ongoing_requests=cfg.max_ongoing_requests,
        ).bind(pool, cfg)

    pools = {name: scorer(name, n) for name, n in cfg.pools.items()}
    return Dispatcher.options(  # type: ignore[attr-defined, no-any-return]
        user_config={"mapping": cfg.mapping},
        max_ongoing_requests=256,
    ).bind(pools, scorer(SHARED, cfg.shared_replicas))


def app(args: dict[str, str]) -> Application:
    """Builder for ``serval run serval.apps.many_models:app --registry URL [--pools
    '{"pool1": 1}'] [--shared-replicas 2]``."""
    config: dict[str, Any] = {}
    for key, value in args.items():
        key = key.replace("-", "_")
        config[key] = json.loads(value) if key in ("pools", "mapping") else value
    if "registry" not in config:
        raise ConfigError(
            "serval.apps.many_models needs --registry (a directory, an fsspec "
            "URL, or mlflow:<tracking-uri>)"
        )
    return build_app(config)
