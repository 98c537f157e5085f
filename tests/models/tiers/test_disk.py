"""The disk warm tier: atomic files in a directory shared by a machine's replicas."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from serval.models import ModelStore
from serval.models.registry.directory import DirectoryRegistry
from serval.models.tiers import TierUnavailableError, WarmTier
from serval.models.tiers.disk import DiskTier
from tests.models import _data


async def test_put_get_delete_sizes(tmp_path: Path) -> None:
    tier = DiskTier(str(tmp_path / "warm"))
    assert await tier.get("k1") is None and await tier.sizes() == {}
    await tier.put("k1", b"one")
    await tier.put("k2", b"two!")
    assert await tier.get("k1") == b"one"
    assert await tier.sizes() == {"k1": 3, "k2": 4}
    assert await tier.delete("k1") and not await tier.delete("k1")
    assert await tier.sizes() == {"k2": 4}
    mode = stat.S_IMODE(os.stat(tmp_path / "warm").st_mode)
    assert mode == 0o700  # only the replicas' user can plant blobs
    assert repr(tier) == f"DiskTier({str(tmp_path / 'warm')!r})"


async def test_keys_are_checked(tmp_path: Path) -> None:
    tier = DiskTier(str(tmp_path))
    with pytest.raises(ValueError, match="invalid tier key"):
        await tier.get("../../etc/passwd")


async def test_readers_see_the_old_blob_or_the_new_never_a_mix(tmp_path: Path) -> None:
    tier = DiskTier(str(tmp_path))
    blobs = [b"a" * 2_000_000, b"b" * 3_000_000]
    await tier.put("k", blobs[0])
    writing = True

    async def write() -> None:
        for i in range(100):
            await tier.put("k", blobs[i % 2])

    async def read() -> set[bytes | None]:
        seen = set()
        while writing:
            seen.add(await tier.get("k"))
        return seen

    reader = asyncio.ensure_future(read())
    await write()  # the file calls run in threads: reads and writes overlap
    writing = False
    assert await reader <= set(blobs)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


async def test_stale_temporary_files_are_cleaned_up(tmp_path: Path) -> None:
    tier = DiskTier(str(tmp_path))
    await tier.put("k", b"blob")
    stale, fresh = tmp_path / ".tmp-crashed", tmp_path / ".tmp-writing"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert await tier.sizes() == {"k": 4}
    assert not stale.exists() and fresh.exists()


async def test_an_unusable_directory_is_an_outage(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    tier = DiskTier(str(blocker))
    with pytest.raises(TierUnavailableError, match="cannot write"):
        await tier.put("k", b"blob")
    with pytest.raises(TierUnavailableError, match="cannot list"):
        await tier.sizes()


async def test_a_tampered_file_is_rejected_and_reloaded_from_the_registry(
    model_dir: Path, tmp_path: Path
) -> None:
    warm_dir = tmp_path / "warm"

    def new_store() -> ModelStore:  # one per replica process: nothing shared but the disk
        registry = DirectoryRegistry(str(model_dir))
        warm = WarmTier(DiskTier(str(warm_dir)), max_bytes=10**9, namespace=registry.identity)
        return ModelStore(registry, warm)

    first = new_store()
    await first.load("iris@1")
    await first.close()
    (blob,) = warm_dir.glob("*.blob")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte in the middle of the pickled model
    blob.write_bytes(bytes(data))

    second = new_store()
    model = await second.load("iris@1")
    X, _ = _data.iris()
    assert model.predict(X[:3]).shape == (3,)
    await second.flush()
    warm, cold = second.stats()
    assert warm.rejected == 1 and warm.hits == 0
    assert cold.loads == 1  # fetched from the registry again
    assert blob.read_bytes() != bytes(data)  # and a good copy put back

    third = new_store()
    await third.load("iris@1")
    warm, cold = third.stats()
    assert (warm.hits, warm.rejected, cold.loads) == (1, 0, 0)
    await second.close()
    await third.close()


async def test_the_budget_is_shared_by_every_process_writing_the_directory(
    tmp_path: Path,
) -> None:
    backend = DiskTier(str(tmp_path))
    # Listing before every put (the default lists at most every 5 s): what another
    # process wrote counts at once.
    one = WarmTier(backend, max_bytes=2_500_000, policy="lru", sync_interval_s=0)
    two = WarmTier(DiskTier(str(tmp_path)), max_bytes=2_500_000, policy="lru", sync_interval_s=0)
    payload = np.zeros(1_000_000, dtype=np.uint8).tobytes()
    assert await one.put("a", payload, cost=1.0)
    assert await two.put("b", payload, cost=1.0)
    assert await one.put("c", payload, cost=1.0)  # sees "b" on disk: evicts to fit
    assert len(await backend.sizes()) == 2
    assert sum((await backend.sizes()).values()) <= 2_500_000
