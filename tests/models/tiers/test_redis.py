"""The Redis warm tier against a real Redis: chunks, signatures, and Redis going away."""

from __future__ import annotations

import asyncio
import logging
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from serval.models import ModelStore, StoreConfig
from serval.models.registry.directory import DirectoryRegistry
from serval.models.tiers import TierUnavailableError, WarmTier
from serval.models.tiers.redis import RedisTier
from tests.models import _data

SECRET = "k" * 32


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis, removed afterwards."""
    name = f"serval:test:{secrets.token_hex(6)}"
    yield name
    client = Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def store_on(registry_dir: Path, tier: RedisTier) -> ModelStore:
    registry = DirectoryRegistry(str(registry_dir))
    warm = WarmTier(tier, max_bytes=10**9, secret=SECRET.encode(), namespace=registry.identity)
    return ModelStore(registry, warm)


async def test_blobs_are_chunked_and_replaced_whole(redis_url: str, prefix: str) -> None:
    tier = RedisTier(redis_url, chunk_bytes=1_000, prefix=prefix)
    data = bytes(range(256)) * 41  # 10,496 bytes: 11 chunks
    await tier.put("k1", data)
    assert await tier.get("k1") == data
    client = Redis.from_url(redis_url)
    chunks = [k async for k in client.scan_iter(match=f"{prefix}:k1:*")]
    assert len(chunks) == 11
    assert [await client.ttl(k) for k in chunks] == [-1] * 11  # made permanent
    await tier.put("k1", b"short")  # the old version's chunks go
    assert len([k async for k in client.scan_iter(match=f"{prefix}:k1:*")]) == 1
    assert await tier.get("k1") == b"short"
    assert await tier.sizes() == {"k1": 5}
    assert await tier.delete("k1") and not await tier.delete("k1")
    assert [k async for k in client.scan_iter(match=f"{prefix}:k1*")] == []
    assert await tier.get("k1") is None and await tier.sizes() == {}
    await client.aclose()
    await tier.close()


async def test_a_missing_chunk_reads_as_a_miss(redis_url: str, prefix: str) -> None:
    tier = RedisTier(redis_url, chunk_bytes=10, prefix=prefix)
    await tier.put("k", b"x" * 100)
    client = Redis.from_url(redis_url)
    (victim, *_) = [k async for k in client.scan_iter(match=f"{prefix}:k:*")]
    await client.delete(victim)
    assert await tier.get("k") is None
    await client.aclose()
    await tier.close()


async def test_a_tampered_blob_in_redis_is_rejected_and_reloaded(
    redis_url: str, prefix: str, model_dir: Path
) -> None:
    first = store_on(model_dir, RedisTier(redis_url, chunk_bytes=4_096, prefix=prefix))
    await first.load("iris@2")
    await first.close()
    client = Redis.from_url(redis_url)
    chunks = sorted([k async for k in client.scan_iter(match=f"{prefix}:*:*:*")])
    assert len(chunks) > 2
    middle = chunks[len(chunks) // 2]
    data = bytearray(await client.get(middle))
    data[10] ^= 0xFF  # whoever can write to Redis changes one byte of the pickle
    await client.set(middle, bytes(data))

    second = store_on(model_dir, RedisTier(redis_url, chunk_bytes=4_096, prefix=prefix))
    model = await second.load("iris@2")
    X, _ = _data.iris()
    assert model.predict(X[:2]).shape == (2,)
    await second.flush()
    warm, cold = second.stats()
    assert (warm.rejected, warm.hits, cold.loads) == (1, 0, 1)
    third = store_on(model_dir, RedisTier(redis_url, chunk_bytes=4_096, prefix=prefix))
    await third.load("iris@2")  # the good copy the second store put back
    warm, cold = third.stats()
    assert (warm.hits, warm.rejected, cold.loads) == (1, 0, 0)
    await client.aclose()
    await second.close()
    await third.close()


async def test_blobs_sealed_with_another_key_are_rejected(
    redis_url: str, prefix: str, model_dir: Path
) -> None:
    registry = DirectoryRegistry(str(model_dir))
    other = WarmTier(
        RedisTier(redis_url, prefix=prefix),
        max_bytes=10**9,
        secret=b"not-the-replicas-key",
        namespace=registry.identity,
    )
    await other.put("iris@1", b"anything at all", cost=1.0)
    store = store_on(model_dir, RedisTier(redis_url, prefix=prefix))
    await store.load("iris@1")
    assert store.stats()[0].rejected == 1
    await other.close()
    await store.close()


async def test_redis_stopped_mid_run_requests_still_answered(
    own_redis: tuple[str, subprocess.Popen[bytes]],
    model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, server = own_redis
    config = StoreConfig(registry=str(model_dir), warm=url, hmac_key=SECRET, warm_retry_s=0.05)
    store = ModelStore.from_config(config)
    await store.load("iris@1")
    await store.flush()
    await store.load("iris@1")
    assert store.stats()[0].hits == 1  # Redis serves it

    server.kill()
    server.wait()
    with caplog.at_level(logging.WARNING, "serval.models"):
        for _ in range(10):
            for model_id in ("iris@1", "iris@2", "iris@production"):
                assert (await store.load(model_id)).predict(_data.iris()[0][:1]).shape == (1,)
            await store.flush()
            await asyncio.sleep(0.02)  # past warm_retry_s now and then: Redis is retried
    warm, cold = store.stats()
    assert warm.outages == 1
    outage_logs = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(outage_logs) == 1 and "redis" in outage_logs[0].getMessage().lower()
    assert cold.loads == 1 + 30  # every request answered from the registry
    assert "warm-tier write failed" not in caplog.text
    await store.close()


async def test_an_unreachable_redis_is_translated(prefix: str) -> None:
    tier = RedisTier("redis://127.0.0.1:1/0", prefix=prefix, connect_timeout_s=1.0)
    with pytest.raises(TierUnavailableError, match=r"redis at redis://127.0.0.1:1/0"):
        await tier.get("k")
    await tier.close()
    assert repr(RedisTier("redis://user:pw@host:6379/0")) == (
        "RedisTier('redis://***@host:6379/0', prefix='serval:warm')"
    )
