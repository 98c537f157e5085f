"""The many-models application end to end: generated tenants, real replicas, real HTTP."""

from __future__ import annotations

import concurrent.futures
import os

import httpx
import pytest

import serval
from serval.apps._tenants import generate, sample_rows
from serval.apps.many_models import ManyModelsConfig, build_app
from tests.utils import free_port

ROWS = sample_rows(3)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("registry"))
    for _ in generate(root, 40):
        pass
    return root


@pytest.fixture
def many(serval_home: str, registry: str) -> str:
    port = free_port()
    serval.start(http_options={"port": port})
    config = ManyModelsConfig(
        registry=registry,
        warm="disk:" + os.path.join(serval_home, "warm"),
        shared_replicas=2,
        pools={"pool1": 1},
        mapping={"tenant1": "pool1"},
        max_models_per_replica=8,
    )
    serval.run(build_app(config), name="mm", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def score(base: str, tenant: str, data: object = ROWS) -> httpx.Response:
    return httpx.post(f"{base}/score", json={"tenant": tenant, "data": data}, timeout=60)


def test_scores_route_to_pools(many: str) -> None:
    shared = score(many, "tenant5").json()
    assert shared["deployment"] == "shared" and shared["tenant"] == "tenant5"
    assert len(shared["prediction"]) == 3 and shared["version"] == 1
    assert score(many, "tenant1").json()["deployment"] == "pool1"


def test_cold_model_loads_once_under_concurrent_first_requests(many: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: score(many, "tenant9").status_code, range(24)))
    assert answers == [200] * 24
    stats = serval.api.model_stats("mm", "shared")
    assert sum(s["hot"]["loads"] for s in stats.values()) == 1, stats
    holders = [
        r
        for r, ids in serval.api._call(serval.transport.messages.ListModels())["mm/shared"].items()
        if "tenant9" in ids
    ]
    assert len(holders) == 1


def test_pool_change_moves_traffic_after_prewarming(many: str) -> None:
    assert score(many, "tenant3").json()["deployment"] == "shared"
    r = httpx.post(
        f"{many}/update_dedicated_pool", json={"mapping": {"tenant3": "pool1"}}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.json()["prewarmed"] == ["tenant3"]
    # warm before traffic moved: pool1 already holds tenant3 when the table changes
    pool_stats = serval.api.model_stats("mm", "pool_pool1")
    loads_before = sum(s["hot"]["loads"] for s in pool_stats.values())
    assert all(score(many, "tenant3").json()["deployment"] == "pool1" for _ in range(5))
    pool_stats = serval.api.model_stats("mm", "pool_pool1")
    assert sum(s["hot"]["loads"] for s in pool_stats.values()) == loads_before  # no cold start
    assert httpx.get(f"{many}/pools").json()["mapping"]["tenant3"] == "pool1"


def test_bad_input(many: str) -> None:
    r = httpx.post(f"{many}/score", content=b"{nope", timeout=30)
    assert r.status_code == 400 and "malformed JSON" in r.text
    r = score(many, "")
    assert r.status_code == 400 and "'tenant'" in r.text
    r = score(many, "tenant4", data="not rows")
    assert r.status_code == 400 and "'data'" in r.text
    r = score(many, "tenant4", data=[[1.0, 2.0]])
    assert r.status_code == 400 and "4 features" in r.text
    r = score(many, "tenant999999")
    assert r.status_code == 404 and "tenant999999" in r.text
    r = httpx.post(f"{many}/update_dedicated_pool", json={"mapping": {"tenant4": "nope"}})
    assert r.status_code == 400 and "unknown pool" in r.text
