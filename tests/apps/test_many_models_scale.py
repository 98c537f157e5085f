"""The many-models app over 100,000 registered models, through real processes: requests
for random ones are answered by the right model in the right pool, and what the
replicas hold and what the controller sends stay the size of the caches, not of the
registry (placement goes out as deltas; whole tables only when replicas change)."""

from __future__ import annotations

import concurrent.futures
import fnmatch
import os
import random

import httpx
import pytest

import serval
from serval.apps._tenants import link_registry, read_tenant, sample_rows
from serval.apps.many_models import ManyModelsConfig, build_app
from serval.transport.messages import ListModels
from tests.utils import free_port, wait_for

MODELS = 100_000
DISTINCT = 8  # generated tenants the registered models' files link to
PATTERN = "model7*"  # a dedicated pool by pattern: 11,111 of the 100,000
CAPACITY = 32
ROWS = sample_rows(3)


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and wanted in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in the metrics")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_random_models_of_a_100k_registry(serval_home: str, tmp_path: object) -> None:
    root = os.path.join(str(tmp_path), "registry")
    names = link_registry(root, MODELS, distinct=DISTINCT)
    expected = [
        [int(p) for p in read_tenant(os.path.join(root, ".base"), f"tenant{k + 1}").predict(ROWS)]
        for k in range(DISTINCT)
    ]
    port = free_port()
    serval.start(http_options={"port": port})
    config = ManyModelsConfig(
        registry=root,
        warm="disk:" + os.path.join(serval_home, "warm"),
        shared_replicas=2,
        pools={"pool1": 1},
        mapping={PATTERN: "pool1", "model3": "pool1"},
        max_models_per_replica=CAPACITY,
    )
    serval.run(build_app(config), name="mm", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    for warm_up in ("model0", "model7"):  # routers subscribe to the pools on first use
        httpx.post(f"{base}/score", json={"tenant": warm_up, "data": ROWS}, timeout=120)
    before = httpx.get(f"{base}/-/metrics", timeout=60).text

    rng = random.Random(11)
    picks = [rng.randrange(MODELS) for _ in range(400)] + [3]  # model3: mapped by its id

    def ask(i: int) -> tuple[int, httpx.Response]:
        r = httpx.post(f"{base}/score", json={"tenant": names[i], "data": ROWS}, timeout=120)
        return i, r

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, picks))
    for i, r in answers:
        assert r.status_code == 200, (names[i], r.text)
        body = r.json()
        assert body["tenant"] == names[i] and body["version"] == "1"
        assert body["prediction"] == expected[i % DISTINCT], names[i]
        dedicated = fnmatch.fnmatchcase(names[i], PATTERN) or names[i] == "model3"
        assert body["deployment"] == ("pool1" if dedicated else "shared"), names[i]

    # What the replicas hold is bounded by their caches, not by the registry (the
    # controller hears of each change within a report interval).
    def bounded() -> dict[str, list[int]]:
        held = serval.api._call(ListModels())
        sizes = {d: [len(ids) for ids in held[d].values()] for d in ("mm/shared", "mm/pool_pool1")}
        return sizes if all(0 < n <= CAPACITY for ns in sizes.values() for n in ns) else {}

    wait_for(bounded, timeout_s=10, what="placement within the caches' capacity")
    # Hundreds of loads and evictions went to the routers as deltas; no whole table
    # was sent again (no replica came or went).
    after = httpx.get(f"{base}/-/metrics", timeout=60).text
    deltas = _metric(after, "serval_placement_updates_total", kind="models")
    assert deltas - _metric(before, "serval_placement_updates_total", kind="models") > 100
    assert _metric(after, "serval_placement_updates_total", kind="target") == _metric(
        before, "serval_placement_updates_total", kind="target"
    )
