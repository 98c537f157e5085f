"""The warm tier over the in-memory fake: signing, budget, statistics and outages."""

from __future__ import annotations

import asyncio
import logging

import pytest

from serval.models.tiers import MemoryTier, WarmTier, seal

SECRET = b"0123456789abcdef"


def warm(backend: MemoryTier | None = None, **options: object) -> WarmTier:
    options.setdefault("max_bytes", 10_000)
    return WarmTier(backend or MemoryTier(), secret=SECRET, **options)  # type: ignore[arg-type]


async def test_put_then_get() -> None:
    tier = warm()
    assert await tier.get("iris@1") is None
    assert await tier.put("iris@1", b"model bytes", cost=0.5)
    assert bytes(await tier.get("iris@1") or b"") == b"model bytes"
    stats = tier.stats()
    assert (stats.hits, stats.misses, stats.loads, stats.entries) == (1, 1, 1, 1)
    assert stats.bytes_used > len(b"model bytes")  # sealed: the header counts too
    assert stats.load_time_s == pytest.approx(0.5)


async def test_a_tampered_blob_is_discarded_and_counted() -> None:
    backend = MemoryTier()
    tier = warm(backend)
    await tier.put("iris@1", b"model bytes", cost=0.5)
    (key,) = backend.blobs
    backend.blobs[key] = backend.blobs[key][:-1] + b"X"
    assert await tier.get("iris@1") is None
    assert backend.blobs == {}  # deleted: the next load puts a good copy back
    assert tier.stats().rejected == 1 and tier.stats().entries == 0


async def test_a_blob_planted_without_the_key_is_rejected() -> None:
    backend = MemoryTier()
    tier = warm(backend)
    key = tier.key("iris@1")
    backend.blobs[key] = seal(key, b"import os; os.system('...')", None)
    assert await tier.get("iris@1") is None
    assert tier.stats().rejected == 1


async def test_the_budget_evicts_by_policy() -> None:
    backend = MemoryTier()
    tier = warm(backend, max_bytes=3 * 1_100, policy="lru")
    for name in ("a", "b", "c"):
        assert await tier.put(name, b"x" * 1_000, cost=1.0)
    await tier.get("a")
    assert await tier.put("d", b"x" * 1_000, cost=1.0)
    assert await tier.get("b") is None  # least recently used
    assert {n for n in "acd" if await tier.get(n) is not None} == set("acd")
    assert tier.stats().evictions == 1 and len(backend.blobs) == 3
    assert not await tier.put("huge", b"x" * 5_000, cost=1.0)


async def test_entries_other_processes_put_count_against_the_budget() -> None:
    backend = MemoryTier()
    mine, theirs = warm(backend, max_bytes=2_500), warm(backend, max_bytes=2_500)
    await theirs.put("theirs1", b"x" * 1_000, cost=1.0)
    await theirs.put("theirs2", b"x" * 1_000, cost=1.0)
    assert await mine.put("mine", b"x" * 1_000, cost=1.0)
    assert len(backend.blobs) == 2  # one of theirs made room
    assert mine.stats().bytes_used <= 2_500


async def test_namespaces_do_not_share_entries() -> None:
    backend = MemoryTier()
    one, two = warm(backend, namespace="/srv/a"), warm(backend, namespace="/srv/b")
    await one.put("iris@1", b"from a", cost=1.0)
    assert await two.get("iris@1") is None
    assert one.key("iris@1") != two.key("iris@1")


async def test_an_outage_is_logged_and_counted_once_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryTier()
    tier = warm(backend, retry_s=3600)
    await tier.put("iris@1", b"model", cost=1.0)
    backend.available = False
    with caplog.at_level(logging.WARNING, "serval.models"):
        for _ in range(20):
            assert await tier.get("iris@1") is None
            assert not await tier.put("iris@2", b"model", cost=1.0)
    assert tier.stats().outages == 1
    assert caplog.text.count("is unavailable") == 1
    calls = backend.calls
    assert await tier.get("iris@1") is None
    assert backend.calls == calls  # skipped while down: nobody waits on a dead backend


async def test_after_retry_s_one_request_tries_again_and_recovery_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryTier()
    tier = warm(backend, retry_s=0.01)
    backend.available = False
    with caplog.at_level(logging.WARNING, "serval.models"):
        assert await tier.get("a") is None
        backend.available = True
        await asyncio.sleep(0.02)
        assert await tier.put("a", b"model", cost=1.0)
        assert await tier.get("a") is not None
    assert caplog.text.count("is available again") == 1
    assert tier.stats().outages == 1


async def test_the_backend_is_listed_at_most_once_per_sync_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A listing walks every entry: a put per cold load must not list 100,000 entries
    each time. Between listings the tier counts its own puts."""
    import serval.models.tiers.warm as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])

    class Counting(MemoryTier):
        listings = 0

        async def sizes(self) -> dict[str, int]:
            Counting.listings += 1
            now[0] += 0.5  # a listing that takes 0.5 s
            return await super().sizes()

    backend = Counting()
    tier = WarmTier(backend, max_bytes=2_500, secret=SECRET, sync_interval_s=5)
    for i in range(5):
        assert await tier.put(f"m{i}", b"x" * 1_000, cost=1.0)
    assert Counting.listings == 1  # the first put listed; the rest trusted their count
    assert len(backend.blobs) == 2 and tier.stats().bytes_used <= 2_500  # still in budget
    now[0] += 6.0  # past sync_interval_s, but not 20 x the 0.5 s the listing took
    await tier.put("again", b"x" * 1_000, cost=1.0)
    assert Counting.listings == 1
    now[0] += 5.0
    await tier.put("and again", b"x" * 1_000, cost=1.0)
    assert Counting.listings == 2
