"""The Redis backend: a warm tier shared by replicas on many machines (redis-py asyncio).

Layout under a prefix (``serval:warm`` by default)::

    <prefix>:<key>                    "<token>:<chunks>:<size>"   which chunks are current
    <prefix>:<key>:<token>:<i>        chunk i of that version     (chunk_bytes each)
    <prefix>:index                    hash key -> size            (the budget's view)

Large blobs are split into chunks (Redis values are limited, and one huge value blocks
the server while it is copied). A write stores its chunks under a fresh token with a
short expiry, then in one MULTI/EXEC swaps the head to the new token (``SET … GET``
returns the old head, whose chunks it then deletes), records the size in the index and
makes the new chunks permanent. Readers follow the head and fetch every chunk in one
MGET; a missing chunk (replaced or deleted meanwhile) reads as a miss. A writer that
dies half-way leaves chunks that expire by themselves.

Every redis-py error is translated here into
:class:`~serval.models.tiers.base.TierUnavailableError`. The client retries a command
once (a pooled connection may be stale after a Redis restart), never with backoff: when
Redis is down the warm tier must fail fast and let the registry serve.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from serval.models.tiers.base import TierBackend, TierUnavailableError, check_key

__all__ = ["RedisTier"]

_PENDING_MS = 600_000  # chunks of an unfinished write expire after 10 minutes


class RedisTier(TierBackend):
    """Blobs in Redis, chunked.

    Example::

        tier = RedisTier("redis://cache:6379/0", chunk_bytes=4 * 2**20)
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        chunk_bytes: int = 4 * 1024**2,
        prefix: str = "serval:warm",
        connect_timeout_s: float = 2.0,
        timeout_s: float = 30.0,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
        self.url = url
        self.chunk_bytes = chunk_bytes
        self.prefix = prefix
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"RedisTier({_redact(self.url)!r}, prefix={self.prefix!r})"

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self.url,
                socket_connect_timeout=self.connect_timeout_s,
                socket_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 1),
            )
            self._loop = loop
        return self._client

    def _head(self, key: str) -> str:
        return f"{self.prefix}:{check_key(key)}"

    def _chunk(self, key: str, token: str, i: int) -> str:
        return f"{self.prefix}:{key}:{token}:{i}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:index"

    async def get(self, key: str) -> bytes | None:
        async with _translated(self):
            client = self._redis()
            head = await client.get(self._head(key))
            parsed = _parse_head(head)
            if parsed is None:
                return None
            token, count, size = parsed
            chunks = await client.mget([self._chunk(key, token, i) for i in range(count)])
            if any(c is None for c in chunks):
                return None  # replaced or deleted while we read
            data = b"".join(chunks)
            return data if len(data) == size else None

    async def put(self, key: str, data: bytes) -> None:
        async with _translated(self):
            client = self._redis()
            token = secrets.token_hex(6)
            view = memoryview(data)
            step = self.chunk_bytes
            pieces = [bytes(view[i : i + step]) for i in range(0, len(data), step)] or [b""]
            names = [self._chunk(key, token, i) for i in range(len(pieces))]
            async with client.pipeline(transaction=False) as pipe:
                for name, piece in zip(names, pieces, strict=True):
                    pipe.set(name, piece, px=_PENDING_MS)
                await pipe.execute()
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self._head(key), f"{token}:{len(pieces)}:{len(data)}", get=True)
                pipe.hset(self._index, key, len(data))
                for name in names:
                    pipe.persist(name)
                old_head, *_ = await pipe.execute()
            await self._drop_chunks(client, key, old_head)

    async def delete(self, key: str) -> bool:
        async with _translated(self):
            client = self._redis()
            async with client.pipeline(transaction=True) as pipe:
                pipe.getdel(self._head(key))
                pipe.hdel(self._index, key)
                old_head, removed = await pipe.execute()
            await self._drop_chunks(client, key, old_head)
            return old_head is not None or bool(removed)

    async def sizes(self) -> dict[str, int]:
        async with _translated(self):
            index = await self._redis().hgetall(self._index)
            return {k.decode(): int(v) for k, v in index.items()}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            try:
                await client.aclose()
            except Exception:  # closing a client whose server is gone
                pass

    async def _drop_chunks(self, client: Any, key: str, head: bytes | None) -> None:
        parsed = _parse_head(head)
        if parsed is not None:
            token, count, _ = parsed
            await client.delete(*[self._chunk(key, token, i) for i in range(count)])


def _parse_head(head: bytes | None) -> tuple[str, int, int] | None:
    if head is None:
        return None
    try:
        token, count, size = head.decode().split(":")
        return token, int(count), int(size)
    except ValueError:
        return None  # not written by us: treated as absent


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


class _translated:
    """``async with``: redis-py's (and the socket's) errors become TierUnavailableError."""

    def __init__(self, tier: RedisTier) -> None:
        self.tier = tier

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, asyncio.CancelledError | TierUnavailableError):
            return
        from redis.exceptions import RedisError

        if isinstance(exc, RedisError | OSError | TimeoutError | asyncio.TimeoutError):
            url = _redact(self.tier.url)
            raise TierUnavailableError(f"redis at {url}: {type(exc).__name__}: {exc}") from exc
