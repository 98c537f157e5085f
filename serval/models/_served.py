"""What a load tells the cache that runs it, whatever code sits between the two.

A :class:`~serval.models.cache.ModelCache` calls its loader inside :func:`recording`;
:meth:`ModelStore.load <serval.models.store.ModelStore.load>` (or any loader) calls

- :func:`note` with the concrete version it resolved, so the cache knows the version
  of each model it holds;
- :func:`expect` with the size of the file it is about to deserialize, so the cache
  reserves that memory (and makes room for it) before the model is built, rather than
  learning its size afterwards.

Example::

    with recording() as loaded:
        model = await loader(model_id)
    loaded.version   # "tenant7@2", or None when the loader did not say
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from serval.models.registry.base import parse_model_id

__all__ = ["LoadedVersion", "alias_of", "expect", "note", "recording"]


@dataclass
class LoadedVersion:
    version: str | None = None  # "name@version"
    alias: str | None = None  # the alias the model id named ("latest" for a bare name)
    # The cache's hook for expect(): reserves memory for a file of this many bytes.
    on_expect: Callable[[int], Awaitable[None]] | None = None


_LOADING: contextvars.ContextVar[LoadedVersion | None] = contextvars.ContextVar(
    "serval_loading_version", default=None
)


@contextlib.contextmanager
def recording(
    on_expect: Callable[[int], Awaitable[None]] | None = None,
) -> Iterator[LoadedVersion]:
    """Collect what :func:`note` says during a load (tasks the load starts included);
    :func:`expect` calls ``on_expect``."""
    record = LoadedVersion(on_expect=on_expect)
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


async def expect(file_bytes: int) -> None:
    """The load running now is about to deserialize a file of ``file_bytes``: returns
    once its cache has room for it (raises when the model cannot fit at all)."""
    record = _LOADING.get()
    if record is not None and record.on_expect is not None:
        await record.on_expect(file_bytes)


def alias_of(model_id: str, version: str) -> str | None:
    """The alias ``model_id`` names: ``tenant7@production`` → ``production``, ``tenant7``
    → ``latest``; ``None`` when it names the version itself."""
    selector = parse_model_id(model_id).selector
    if selector is None:
        return "latest"
    return None if selector == version else selector
