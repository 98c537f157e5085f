"""``@serval.multiplexed``: Ray Serve's model multiplexing, on serval's hot tier.

Decorate the ``async def get_model(self, model_id)`` of a deployment; each instance gets
a :class:`~serval.models.cache.ModelCache` (created on first use) that calls it on a
miss::

    @serval.deployment(num_replicas=2)
    class Scorer:
        @serval.multiplexed(max_num_models_per_replica=64, max_bytes="2GiB")
        async def get_model(self, model_id: str):
            return await serval.models.load(model_id)

        async def __call__(self, request):
            model = await self.get_model(serval.get_multiplexed_model_id())
            return model.predict(await request.json())

For the replica (``serval/replica/server.py``): :func:`loaded_model_ids` lists the models
every cache of this process holds or is loading (reported to the controller so routers
send a model's requests where it is loaded), and :func:`admin` runs the admin API's
model operations (prewarm, pin, unpin, evict, refresh) on them.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final, TypeVar, overload

from serval.context import _served_model_record, get_replica_context
from serval.exceptions import BadRequestError, ConfigError, ServalError
from serval.models.cache import ModelCache
from serval.models.config import CacheConfig, validated
from serval.models.sizing import Sizer

__all__ = [
    "MODEL_OPS",
    "admin",
    "cache_of",
    "caches",
    "describe",
    "loaded_model_ids",
    "multiplexed",
]

M = TypeVar("M")
Method = Callable[[Any, str], Coroutine[Any, Any, M]]
Function = Callable[[str], Coroutine[Any, Any, M]]

MODEL_OPS: Final = ("prewarm", "pin", "unpin", "evict", "refresh")
_WHERE: Final = "@serval.multiplexed"
_MARK: Final = "__serval_multiplexed__"

_CACHES: weakref.WeakSet[ModelCache] = weakref.WeakSet()  # every cache of this process
_SPECS: weakref.WeakSet[_Multiplexed] = weakref.WeakSet()  # every decorated function
_PINNED: set[str] = set()  # pins of this process, applied to caches made later too


class _Multiplexed:
    """One decorated function: its options, and the cache of each instance."""

    def __init__(self, func: Callable[..., Any], config: CacheConfig, sizer: Sizer | None) -> None:
        self.func = func
        self.config = config
        self.sizer = sizer
        self.name = getattr(func, "__qualname__", repr(func))
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        if len(params) not in (1, 2) or any(p.kind not in _POSITIONAL for p in params):
            raise TypeError(
                f"{_WHERE} decorates 'async def get_model(self, model_id)' or "
                f"'async def get_model(model_id)'; {self.name} takes {len(params)} arguments"
            )
        self.is_method = len(params) == 2
        self._attr = f"__serval_models_{func.__name__}"
        self._shared: ModelCache | None = None  # the cache of a plain function

    def cache_for(self, owner: Any) -> ModelCache:
        if not self.is_method:
            if self._shared is None:
                self._shared = _new_cache(self.func, self, self.name)
            return self._shared
        try:
            state = vars(owner)
        except TypeError:
            raise TypeError(
                f"{_WHERE} keeps its cache on the instance, but {type(owner).__name__} "
                "has no __dict__ (it uses __slots__): add '__dict__' to its __slots__"
            ) from None
        cache = state.get(self._attr)
        if not isinstance(cache, ModelCache):
            cache = state[self._attr] = _new_cache(_bind_weakly(self.func, owner), self, self.name)
        return cache

    def split(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, str]:
        """``(owner, model_id)`` from a call's arguments."""
        if not kwargs and len(args) == (2 if self.is_method else 1):
            return (args[0], args[1]) if self.is_method else (None, args[0])
        bound = self._signature.bind(*args, **kwargs)
        values = list(bound.arguments.values())
        return (values[0], values[1]) if self.is_method else (None, values[0])


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _bind_weakly(func: Callable[..., Any], owner: Any) -> Callable[[str], Any]:
    # The cache lives on the instance; a strong reference back would make a cycle that
    # keeps every model alive until the cycle collector runs.
    ref = weakref.ref(owner)

    async def load(model_id: str) -> Any:
        instance = ref()
        if instance is None:
            raise ServalError("the deployment instance this model cache belonged to is gone")
        return await func(instance, model_id)

    return load


def _new_cache(loader: Callable[[str], Any], spec: _Multiplexed, name: str) -> ModelCache:
    cache = ModelCache(loader, spec.config, sizer=spec.sizer, name=name)
    for model_id in _PINNED:
        cache.pin(model_id)
    _CACHES.add(cache)
    return cache


def _decorate(func: Callable[..., Any], config: CacheConfig, sizer: Sizer | None) -> Any:
    if not inspect.iscoroutinefunction(func):
        name = getattr(func, "__qualname__", repr(func))
        raise TypeError(
            f"{_WHERE} can only decorate 'async def' functions or methods; {name} is not"
        )
    spec = _Multiplexed(func, config, sizer)
    _SPECS.add(spec)

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        owner, model_id = spec.split(args, kwargs)
        cache = spec.cache_for(owner)
        model = await cache.get(model_id)
        # The request's answer names the version that produced it (response headers).
        served = _served_model_record()
        served.model_id = model_id
        served.version, served.alias = cache.served_version(model_id)
        return model

    setattr(wrapper, _MARK, spec)
    return wrapper


@overload
def multiplexed(func: Method[M], /) -> Method[M]: ...
@overload
def multiplexed(func: Function[M], /) -> Function[M]: ...
@overload
def multiplexed(
    func: None = None,
    /,
    *,
    max_num_models_per_replica: int = 3,
    max_bytes: int | str | None = None,
    policy: str = "popularity",
    admission: str | None = None,
    max_concurrent_loads: int | None = None,
    max_queued_loads: int | None = 1024,
    load_timeout_s: float | None = 300.0,
    load_retries: int = 2,
    sizer: Sizer | None = None,
) -> Callable[[Callable[..., Any]], Any]: ...
def multiplexed(
    func: Callable[..., Any] | None = None,
    /,
    *,
    max_num_models_per_replica: int = 3,
    max_bytes: int | str | None = None,
    policy: str = "popularity",
    admission: str | None = None,
    max_concurrent_loads: int | None = None,
    max_queued_loads: int | None = 1024,
    load_timeout_s: float | None = 300.0,
    load_retries: int = 2,
    sizer: Sizer | None = None,
) -> Any:
    """Cache the models an ``async def get_model(self, model_id)`` loads (Ray Serve's
    ``@serve.multiplexed``, plus byte budgets and a cost-aware policy).

    ``max_num_models_per_replica``: models kept per replica (``-1``: no count limit).
    ``max_bytes``: bytes kept (``"2GiB"``), measured after each load; ``sizer(model)``
    or the model's ``__serval_nbytes__()`` measure it when given (they run on the
    event loop, so they must answer at once; the fallback estimate runs in a
    thread). ``policy``: ``popularity`` (default), ``gdsf``, ``lfu`` or ``lru``;
    ``admission="tinylfu"`` keeps one-off tenants from flushing hot models. Loads:
    ``load_timeout_s`` each, ``load_retries`` extra
    attempts with backoff. Loads overlap as long as the bytes being loaded and the bytes
    kept fit ``max_bytes`` (half the machine's memory without it);
    ``max_concurrent_loads`` adds a fixed cap, and live loads waiting beyond
    ``max_queued_loads`` are refused with HTTP 503 + ``Retry-After``. Bad options raise
    :class:`~serval.exceptions.ConfigError` here.

    Example::

        @serval.multiplexed(max_num_models_per_replica=64, max_bytes="2GiB")
        async def get_model(self, model_id: str):
            return await serval.models.load(model_id)
    """
    if isinstance(max_num_models_per_replica, bool) or not isinstance(
        max_num_models_per_replica, int
    ):
        raise ConfigError(
            f"invalid {_WHERE} option 'max_num_models_per_replica' = "
            f"{max_num_models_per_replica!r}: expected an int >= 1, or -1 for no limit"
        )
    if max_num_models_per_replica == 0 or max_num_models_per_replica < -1:
        raise ConfigError(
            f"invalid {_WHERE} option 'max_num_models_per_replica' = "
            f"{max_num_models_per_replica!r}: must be >= 1, or -1 for no limit"
        )
    if sizer is not None and not callable(sizer):
        raise ConfigError(f"invalid {_WHERE} option 'sizer' = {sizer!r}: expected a callable")
    options: dict[str, Any] = {
        "max_models": None if max_num_models_per_replica == -1 else max_num_models_per_replica,
        "max_bytes": max_bytes,
        "policy": policy,
        "admission": admission,
        "max_concurrent_loads": max_concurrent_loads,
        "max_queued_loads": max_queued_loads,
        "load_timeout_s": load_timeout_s,
        "load_retries": load_retries,
    }
    config = validated(CacheConfig, options, _WHERE)
    if func is None:
        return lambda f: _decorate(f, config, sizer)
    return _decorate(func, config, sizer)


# -- the replica's side -------------------------------------------------------------------


def cache_of(method: Callable[..., Any]) -> ModelCache:
    """The cache behind a ``@serval.multiplexed`` bound method (or function), to tune
    it per instance (:meth:`ModelCache.resize`) or read its stats.

    Example::

        def __init__(self, max_models: int):
            serval.models.cache_of(self.get_model).resize(max_models=max_models)
    """
    func = getattr(method, "__func__", method)
    spec = getattr(func, _MARK, None)
    if not isinstance(spec, _Multiplexed):
        raise TypeError(f"{method!r} is not a @serval.multiplexed function or bound method")
    owner = getattr(method, "__self__", None)
    if spec.is_method and owner is None:
        raise TypeError(f"pass the bound method (self.{spec.func.__name__}), not the function")
    return spec.cache_for(owner)


def caches() -> list[ModelCache]:
    """Every model cache of this process (creating those of the replica's instance)."""
    _ensure_replica_caches()
    return sorted(_CACHES, key=lambda c: c.name)


def loaded_model_ids() -> list[str]:
    """The models the caches of this process hold or are loading for a request, sorted
    (see :meth:`~serval.models.cache.ModelCache.loaded_model_ids`)."""
    ids: set[str] = set()
    for cache in list(_CACHES):
        ids.update(cache.loaded_model_ids())
    return sorted(ids)


def describe() -> dict[str, dict[str, Any]]:
    """Every model in this process's caches with its hits, bytes and pin (the admin
    API's listing; see :meth:`ModelCache.describe`)."""
    listing: dict[str, dict[str, Any]] = {}
    for cache in caches():
        listing.update(cache.describe())
    return listing


def pin_everywhere(model_id: str) -> None:
    """Pin ``model_id`` in every cache of this process, including caches made later."""
    _PINNED.add(model_id)
    for cache in caches():
        cache.pin(model_id)


def unpin_everywhere(model_id: str) -> None:
    _PINNED.discard(model_id)
    for cache in caches():
        cache.unpin(model_id)


async def admin(op: str, model_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Run an admin model operation on every cache of this process.

    Returns ``{cache name: {model id: outcome}}``; outcomes are short words
    (``loaded``, ``evicted``, ``not loaded``…) or ``error: …``.
    """
    if op not in MODEL_OPS:
        raise BadRequestError(f"unknown model operation {op!r}: one of {list(MODEL_OPS)}")
    ids = list(dict.fromkeys(model_ids))
    targets = caches()
    if not targets:
        raise ServalError("this process has no @serval.multiplexed model cache")
    if op == "pin":
        for model_id in ids:
            pin_everywhere(model_id)
    elif op == "unpin":
        for model_id in ids:
            _PINNED.discard(model_id)
    results: dict[str, dict[str, str]] = {}
    for cache in targets:
        results[cache.name] = await _run(cache, op, ids)
    return results


async def _run(cache: ModelCache, op: str, ids: list[str]) -> dict[str, str]:
    if op in ("prewarm", "pin"):
        outcomes = await cache.prewarm(ids)
        return {m: f"pinned, {o}" if op == "pin" else o for m, o in outcomes.items()}
    if op == "unpin":
        return {m: "unpinned" if cache.unpin(m) else "not pinned" for m in ids}
    out: dict[str, str] = {}
    for model_id in ids:
        try:
            if op == "evict":
                done = await cache.evict(model_id)
                out[model_id] = "evicted" if done else "not loaded"
            else:
                done = await cache.refresh(model_id)
                out[model_id] = "refreshed" if done else "not loaded"
        except ServalError as exc:
            out[model_id] = f"error: {exc}"
    return out


def _ensure_replica_caches() -> None:
    for spec in list(_SPECS):
        if not spec.is_method:
            spec.cache_for(None)
    try:
        owner = get_replica_context().servable_object
    except RuntimeError:
        return  # not in a replica
    if owner is None:
        return
    for klass in type(owner).__mro__:
        for value in list(vars(klass).values()):
            method = getattr(value, _MARK, None)
            if isinstance(method, _Multiplexed) and method.is_method:
                method.cache_for(owner)
