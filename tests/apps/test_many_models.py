"""The many-models application end to end: generated tenants, real replicas, real HTTP."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import signal
import threading
from collections import Counter
from typing import Any

import cloudpickle
import httpx
import pytest

import serval
from serval.apps._tenants import generate, sample_rows, tenant_specs, write_tenant
from serval.apps.many_models import ManyModelsConfig, build_app
from tests.utils import free_port, wait_for

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
        watch_interval_s=0.3,
    )
    serval.run(build_app(config), name="mm", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def score(base: str, tenant: str, data: object = ROWS) -> httpx.Response:
    return httpx.post(f"{base}/score", json={"tenant": tenant, "data": data}, timeout=60)


def test_scores_route_to_pools(many: str) -> None:
    shared = score(many, "tenant5").json()
    assert shared["deployment"] == "shared" and shared["tenant"] == "tenant5"
    assert len(shared["prediction"]) == 3 and shared["version"] == "1"
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


def test_bad_input(many: str, registry: str) -> None:
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
    assert registry not in r.text and "the registry" in r.text  # no server paths
    r = httpx.post(f"{many}/update_dedicated_pool", json={"mapping": {"tenant4": "nope"}})
    assert r.status_code == 400 and "unknown pool" in r.text


def publish(registry: str, tenant: str, version: int) -> None:
    """A new version of ``tenant`` appears in the registry (atomically, as in production)."""
    spec = next(s for s in tenant_specs(40) if s.name == tenant)
    write_tenant(registry, dataclasses.replace(spec, version=version))


def set_alias(registry: str, tenant: str, alias: str, version: int) -> None:
    path = os.path.join(registry, tenant, "aliases.json")
    with open(path + ".tmp", "w") as f:
        json.dump({alias: str(version)}, f)
    os.replace(path + ".tmp", path)


def test_version_swap_under_load_has_no_errors_and_no_mixed_answers(
    many: str, registry: str
) -> None:
    assert score(many, "tenant20").json()["version"] == "1"
    answers: list[tuple[int, object]] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                r = c.post(f"{many}/score", json={"tenant": "tenant20", "data": ROWS})
                answers.append((r.status_code, r.json().get("version")))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answers) > 20, timeout_s=30, what="traffic before the swap")
        publish(registry, "tenant20", 2)  # the watcher (0.3 s) swaps it in
        wait_for(
            lambda: any(v == "2" for _, v in answers[-5:]),
            timeout_s=30,
            what="version 2 answering",
        )
        seen = len(answers)
        wait_for(lambda: len(answers) > seen + 40, timeout_s=30, what="traffic after the swap")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {code for code, _ in answers} == {200}
    assert {v for _, v in answers} == {"1", "2"}  # each answer names one version
    first_new = next(i for i, (_, v) in enumerate(answers) if v == "2")
    # once every holder swapped, nothing answers from version 1 again
    assert all(v == "2" for _, v in answers[first_new + 20 :])


def publish_plain(registry: str, name: str, version: int) -> None:
    """A plain scikit-learn model (no version inside it) as ``name/<version>``."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from serval.apps._tenants import iris_like

    x, y = iris_like(150, version)
    folder = os.path.join(registry, name, f".{version}.tmp")
    os.makedirs(folder)
    joblib.dump(LogisticRegression(max_iter=200).fit(x, y), os.path.join(folder, "model.joblib"))
    os.replace(folder, os.path.join(registry, name, str(version)))


def test_answers_name_the_registry_version_in_body_and_headers(many: str, registry: str) -> None:
    publish_plain(registry, "plain", 1)
    r = score(many, "plain")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["version"], body["alias"], body["model"]) == ("1", "latest", "plain@1")
    assert r.headers["serval-model-version"] == "plain@1"
    assert r.headers["serval-model-alias"] == "latest"
    publish_plain(registry, "plain", 2)  # the watcher (0.3 s) swaps it in
    wait_for(
        lambda: score(many, "plain").json()["version"] == "2",
        timeout_s=30,
        what="version 2 of a plain model answering",
    )
    r = score(many, "plain")
    assert r.headers["serval-model-version"] == "plain@2" and r.json()["model"] == "plain@2"
    set_alias(registry, "plain", "production", 1)
    r = score(many, "plain@production")
    assert (r.json()["version"], r.json()["alias"]) == ("1", "production")
    assert r.headers["serval-model-alias"] == "production"
    r = score(many, "plain@2")  # an explicit version: no alias
    assert r.json()["alias"] is None and "serval-model-alias" not in r.headers


def test_alias_move_is_followed(many: str, registry: str) -> None:
    publish(registry, "tenant21", 2)
    set_alias(registry, "tenant21", "production", 1)
    assert score(many, "tenant21@production").json()["version"] == "1"
    assert score(many, "tenant21").json()["version"] == "2"  # the latest
    set_alias(registry, "tenant21", "production", 2)
    wait_for(
        lambda: score(many, "tenant21@production").json()["version"] == "2",
        timeout_s=30,
        what="the alias move to reach the replicas",
    )


def test_per_model_canary_splits_by_weight(many: str, registry: str) -> None:
    publish(registry, "tenant22", 2)
    r = httpx.post(
        f"{many}/model_canary",
        timeout=60,
        json={"tenant": "tenant22", "version": "2", "weight": 0.3, "stable": "1"},
    )
    assert r.status_code == 200, r.text
    versions = Counter(score(many, "tenant22").json()["version"] for _ in range(200))
    assert set(versions) == {"1", "2"} and 30 <= versions["2"] <= 90, versions  # ~60 expected
    assert httpx.get(f"{many}/pools").json()["model_canaries"]["tenant22"]["weight"] == 0.3
    r = httpx.post(
        f"{many}/model_canary",
        json={"tenant": "tenant22", "version": "2", "weight": 0, "stable": "1"},
        timeout=60,
    )
    assert r.status_code == 200
    assert {score(many, "tenant22").json()["version"] for _ in range(20)} == {"2"}  # latest


def test_model_canary_bad_input(many: str) -> None:
    r = httpx.post(
        f"{many}/model_canary",
        timeout=60,
        json={"tenant": "tenant23", "version": "9", "weight": 0.5},
    )
    assert r.status_code == 404 and "tenant23@9" in r.text
    r = httpx.post(
        f"{many}/model_canary",
        timeout=60,
        json={"tenant": "tenant23", "version": "1", "weight": 1.5},
    )
    assert r.status_code == 400 and "'weight'" in r.text
    r = httpx.post(f"{many}/model_canary", timeout=60, json={"tenant": "", "version": "1"})
    assert r.status_code == 400 and "'tenant'" in r.text


def kill_replica(replica_id: str) -> None:
    """SIGKILL the replica process started for ``replica_id`` (local runtime)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"serval.replica" in argv and replica_id.encode() in argv:
            os.kill(int(pid), signal.SIGKILL)
            return
    raise AssertionError(f"no process for replica {replica_id}")


def test_models_of_a_dead_replica_re_home_on_the_next_requests(many: str) -> None:
    tenants = [f"tenant{i}" for i in range(24, 32)]
    homes = {t: score(many, t).json()["replica"] for t in tenants}
    victim = homes[tenants[0]]
    kill_replica(victim)
    for tenant in tenants:  # its models load again elsewhere; nobody sees an error
        answers = [score(many, tenant) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200], answers[0].text
        assert all(r.json()["replica"] != victim for r in answers)


ADMIN_TOKEN = "many-models-admin-token"


def test_admin_api_and_cli_on_real_models(serval_home: str, registry: str) -> None:
    import subprocess
    import sys

    port = free_port()
    serval.start(http_options={"port": port, "admin_token": ADMIN_TOKEN})
    config = ManyModelsConfig(
        registry=registry,
        shared_replicas=2,
        max_models_per_replica=4,
        warm="disk:" + os.path.join(serval_home, "warm"),
    )
    serval.run(build_app(config), name="mm", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    for _ in range(3):
        assert score(base, "tenant33").status_code == 200
    listing = httpx.get(f"{base}/-/admin/models", headers=auth, timeout=60).json()
    held = {m: info for r in listing["mm/shared"].values() for m, info in r.items()}
    assert held["tenant33"]["hits"] == 2 and held["tenant33"]["bytes"] > 0  # 1 load, 2 hits

    def op(name: str, *ids: str) -> dict[str, Any]:
        r = httpx.post(
            f"{base}/-/admin/models/{name}",
            headers=auth,
            timeout=60,
            json={"app": "mm", "deployment": "shared", "model_ids": list(ids)},
        )
        assert r.status_code == 200, r.text
        return r.json()

    assert "loaded" in json.dumps(op("pin", "tenant34"))
    for i in range(2, 19):  # more tenants than the replicas hold: the pin must survive
        assert score(base, f"tenant{i}").status_code == 200
    listing = httpx.get(f"{base}/-/admin/models", headers=auth, timeout=60).json()
    pinned = [
        info for r in listing["mm/shared"].values() for m, info in r.items() if m == "tenant34"
    ]
    assert pinned and all(info["pinned"] for info in pinned)
    assert "evicted" in json.dumps(op("evict", "tenant34"))
    listing = httpx.get(f"{base}/-/admin/models", headers=auth, timeout=60).json()
    assert not any("tenant34" in r for r in listing["mm/shared"].values())
    assert "error" in json.dumps(op("prewarm", "tenant999999"))  # names what failed

    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "t"}
    r = subprocess.run(
        [sys.executable, "-m", "serval.cli", "models", "--token", ADMIN_TOKEN, "ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "mm/shared" in r.stdout and "tenant33" in r.stdout


def test_serval_run_many_models_app_from_the_cli(serval_home: str, registry: str) -> None:
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "mmcli"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serval.cli",
            "run",
            "serval.apps.many_models:app",
            "--registry",
            registry,
            "--shared-replicas",
            "1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return score(base, "tenant5").status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # exited: fail below with its output

        wait_for(up, timeout_s=90, what="serval run serval.apps.many_models:app")
        answer = score(base, "tenant5").json()
        assert answer["deployment"] == "shared" and answer["version"] == "1"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_run_without_registry_fails_naming_it(serval_home: str) -> None:
    import subprocess
    import sys

    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "mmcli2"}
    r = subprocess.run(
        [sys.executable, "-m", "serval.cli", "run", "serval.apps.many_models:app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "--registry" in r.stdout + r.stderr


def test_a_model_that_raises_is_a_500_without_the_remote_traceback(
    serval_home: str, tmp_path: Any
) -> None:
    root = str(tmp_path / "registry")
    for _ in generate(root, 2):
        pass
    folder = os.path.join(root, "exploding", "1")
    os.makedirs(folder)
    with open(os.path.join(folder, "model.pkl"), "wb") as f:
        f.write(cloudpickle.dumps(_exploding()))
    port = free_port()
    serval.start(http_options={"port": port})
    serval.run(build_app(ManyModelsConfig(registry=root, shared_replicas=1)), name="mm")
    r = score(f"http://127.0.0.1:{port}", "exploding")
    assert r.status_code == 500, r.text
    error = r.json()["error"]
    assert "ZeroDivisionError: the model's own bug" in error and "request id" in error
    assert "Traceback" not in error and "File " not in error


def _exploding() -> Any:
    """A model whose own code fails (a local class: pickled by value, as replicas cannot
    import tests/)."""

    class Exploding:
        n_features_in_ = 4

        def predict(self, x: Any) -> Any:
            raise ZeroDivisionError("the model's own bug")

    return Exploding()


def _oip_infer(base: str, tenant: str, version: str | None = None) -> httpx.Response:
    path = f"/v2/models/{tenant}" + (f"/versions/{version}" if version else "") + "/infer"
    tensor = {
        "name": "input-0",
        "datatype": "FP64",
        "shape": [3, 4],
        "data": [v for row in ROWS for v in row],
    }
    return httpx.post(f"{base}{path}", json={"inputs": [tensor]}, timeout=60)


def _holders(deployment: str, model: str) -> list[str]:
    held = serval.api._call(serval.transport.messages.ListModels())[f"mm/{deployment}"]
    return [r for r, ids in held.items() if model in ids]


def test_oip_infer_goes_from_the_proxy_to_the_pool_not_through_the_ingress(
    many: str, registry: str
) -> None:
    """The proxy routes OIP infer calls itself with the ingress' published table: the
    Dispatcher does no work for them, a mapping change (pattern, not prewarmed) and a
    per-model canary reach the proxy before the change is answered."""
    from tests.observability._scrape import scrape

    def dispatcher_calls() -> float:
        return scrape(many).value(
            "serval_replica_processing_latency_seconds_count", deployment="Dispatcher"
        )

    assert _oip_infer(many, "tenant6").status_code == 200
    before = dispatcher_calls()
    for tenant in ("tenant6", "tenant7", "tenant1"):
        r = _oip_infer(many, tenant)
        assert r.status_code == 200 and r.json()["model_name"] == tenant, r.text
    assert _oip_infer(many, "tenant404").status_code == 404
    assert dispatcher_calls() == before  # none of them went through the ingress
    wait_for(lambda: _holders("pool_pool1", "tenant1"), timeout_s=30, what="tenant1 in pool1")
    assert not _holders("shared", "tenant1")
    # A pattern mapping is not prewarmed: the first OIP call loads the model in pool1.
    r = httpx.post(
        f"{many}/update_dedicated_pool", json={"mapping": {"tenant3?": "pool1"}}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert _oip_infer(many, "tenant33").status_code == 200
    wait_for(lambda: _holders("pool_pool1", "tenant33"), timeout_s=30, what="tenant33 in pool1")
    assert not _holders("shared", "tenant33")
    # A per-model canary at weight 1: every OIP call without a version gets version 2.
    publish(registry, "tenant24", 2)
    r = httpx.post(
        f"{many}/model_canary",
        json={"tenant": "tenant24", "version": "2", "weight": 1.0, "stable": "1"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert {_oip_infer(many, "tenant24").json()["model_version"] for _ in range(10)} == {"2"}
    assert _oip_infer(many, "tenant24", "1").json()["model_version"] == "1"
