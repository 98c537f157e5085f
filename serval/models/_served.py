"""Which version a load produced: the store notes it, the cache keeps it with the model.

A :class:`~serval.models.cache.ModelCache` calls its loader inside
:func:`recording`; :meth:`ModelStore.load <serval.models.store.ModelStore.load>` (or
any loader) calls :func:`note` with the concrete version it resolved, so the cache
knows the version of each model it holds, whatever code sits between the two.

Example::

    with recording() as loaded:
        model = await loader(model_id)
    loaded.version   # "tenant7@2", or None when the loader did not say
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from serval.models.registry.base import parse_model_id

__all__ = ["LoadedVersion", "alias_of", "note", "recording"]


@dataclass
class LoadedVersion:
    version: str | None = None  # "name@version"
    alias: str | None = None  # the alias the model id named ("latest" for a bare name)


_LOADING: contextvars.ContextVar[LoadedVersion | None] = contextvars.ContextVar(
    "serval_loading_version", default=None
)


@contextlib.contextmanager
def recording() -> Iterator[LoadedVersion]:
    """Collect what :func:`note` says during a load (tasks the load starts included)."""
    record = LoadedVersion()
    token = _LOADING.set(record)
    try:
        yield record
    finally:
        _LOADING.reset(token)


def note(version: str, alias: str | None) -> None:
    """The load running now produced ``version`` (reached through ``alias``)."""
    record = _LOADING.get()
    if record is not None:
        record.version = version
        record.alias = alias


def alias_of(model_id: str, version: str) -> str | None:
    """The alias ``model_id`` names: ``tenant7@production`` → ``production``, ``tenant7``
    → ``latest``; ``None`` when it names the version itself."""
    selector = parse_model_id(model_id).selector
    if selector is None:
        return "latest"
    return None if selector == version else selector
