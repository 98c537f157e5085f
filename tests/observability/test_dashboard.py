"""``/-/dashboard``: its JSON from a real many-models instance, its token, and the page
rendered by a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import httpx
import pytest

import serval
from serval.apps._tenants import generate, sample_rows
from serval.apps.many_models import ManyModelsConfig, build_app
from tests.utils import free_port, wait_for

TOKEN = "dashboard-admin-token"
REQUESTS = {"tenant1": 5, "tenant2": 3, "tenant3": 1}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("registry"))
    for _ in generate(root, 6):
        pass
    return root


def _start(registry: str, token: str | None) -> str:
    port = free_port()
    http: dict[str, object] = {"port": port}
    if token:
        http["admin_token"] = token
    serval.start(http_options=http)
    config = ManyModelsConfig(registry=registry, shared_replicas=2, max_models_per_replica=4)
    serval.run(build_app(config), name="mm", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    rows = sample_rows(2)
    for tenant, n in REQUESTS.items():
        for _ in range(n):
            r = httpx.post(f"{base}/score", json={"tenant": tenant, "data": rows}, timeout=60)
            assert r.status_code == 200, r.text
    assert httpx.get(f"{base}/score", timeout=30).status_code == 404  # a client error
    return base


@pytest.fixture
def instance(serval_home: str, registry: str) -> Iterator[str]:
    yield _start(registry, None)


@pytest.fixture
def secured(serval_home: str, registry: str) -> Iterator[str]:
    yield _start(registry, TOKEN)


def _data(base: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base}/-/dashboard/data", headers=headers, timeout=30)


def test_dashboard_data(instance: str) -> None:
    sent = sum(REQUESTS.values()) + 1

    def complete() -> dict | None:  # replicas report models every 0.1 s
        d = _data(instance).json()
        heat = d["models"].get("heat", [])
        return d if {h["model_id"] for h in heat if h["resident"]} >= set(REQUESTS) else None

    d = wait_for(complete, what="the three tenants resident in the heat map")
    (app,) = d["applications"]
    assert app["name"] == "mm" and app["status"] == "RUNNING" and app["ingress"] == "Dispatcher"
    deployments = {dep["name"]: dep for dep in app["deployments"]}
    assert set(deployments) == {"Dispatcher", "shared"}
    shared = deployments["shared"]
    assert shared["target_replicas"] == 2 and shared["replica_states"] == {"RUNNING": 2}
    assert [r["state"] for r in shared["replicas"]] == ["RUNNING", "RUNNING"]
    assert sum(r["processed"] for r in shared["replicas"]) == sum(REQUESTS.values())
    (route,) = d["routes"]
    assert route["route"] == "/" and route["deployment"] == "Dispatcher"
    assert route["requests"] == sent and route["errors"] == 1 and route["server_errors"] == 0
    assert route["latency_ms"]["p50"] > 0
    models = d["models"]
    # Each tenant loads once (a miss), then hits: 9 requests, 3 misses.
    assert models["misses"] == 3 and models["hits"] == 6 and models["loads"] == 3
    assert models["hit_ratio"] == pytest.approx(6 / 9)
    by_model = {h["model_id"]: h for h in models["heat"] if h["resident"]}
    assert by_model["tenant1"]["hits"] == 4 and by_model["tenant1"]["bytes"] > 0
    assert by_model["tenant1"]["replica"] in {r["replica"] for r in shared["replicas"]}
    assert by_model["tenant1"]["load_time_s"] > 0
    page = httpx.get(f"{instance}/-/dashboard", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # Nothing on the page comes from elsewhere: no URL to another host.
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page.text)


def test_dashboard_data_needs_the_admin_token_when_one_is_set(secured: str) -> None:
    assert _data(secured).status_code == 401
    assert _data(secured, "wrong-token-123").status_code == 403
    r = _data(secured, TOKEN)
    assert r.status_code == 200 and r.json()["applications"][0]["name"] == "mm"
    # The page holds no data; it asks for the token.
    page = httpx.get(f"{secured}/-/dashboard", timeout=30)
    assert page.status_code == 200 and "admin token" in page.text


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: run scripts/ensure-services.sh"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.slow
@pytest.mark.browser
def test_dashboard_renders_in_chromium(secured: str, tmp_path: object) -> None:
    wait_for(
        lambda: any(h["resident"] for h in _data(secured, TOKEN).json()["models"]["heat"]),
        what="a resident model",
    )
    url = f"{secured}/-/dashboard#token={TOKEN}"  # the fragment never reaches the server
    run = _chromium("--dump-dom", url)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = re.sub(r"<script>.*?</script>", "", run.stdout, flags=re.S)  # the rendered part
    assert 'data-loaded="1"' in dom, dom[-3000:]
    names = re.findall(r'<td class="deployment-name">([^<]+)', dom)
    assert [n.strip() for n in names] == ["Dispatcher", "shared"]
    heat = dom[dom.index('id="heatmaps"') :]
    for tenant in REQUESTS:
        assert f'data-model="{tenant}"' in heat
    assert re.search(r'class="cell resident" data-model="tenant1"', heat)
    assert "mm / shared" in heat and "hit ratio" in dom
    shot = os.path.join(str(tmp_path), "dashboard.png")
    run = _chromium("--window-size=1300,1000", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert run.returncode == 0, run.stderr[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_dashboard_with_metrics_off_lists_models_from_the_replicas(
    serval_home: str, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVAL_METRICS", "0")
    base = _start(registry, None)

    def resident() -> set[str]:
        heat = _data(base).json()["models"]["heat"]
        return {h["model_id"] for h in heat if h["resident"]}

    wait_for(lambda: resident() >= set(REQUESTS), what="the listing-based heat map")
    d = _data(base).json()
    by_model = {h["model_id"]: h for h in d["models"]["heat"]}
    assert by_model["tenant1"]["hits"] == 4 and by_model["tenant1"]["bytes"] > 0
    assert by_model["tenant1"]["deployment"] == "shared"
    assert {dep["name"] for dep in d["applications"][0]["deployments"]} == {"Dispatcher", "shared"}
