"""``GET /-/metrics`` end to end: known traffic through real proxy, controller and replica
processes, then a scrape that finds the exact counts."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest
from starlette.requests import Request

import serval
from serval import metrics
from tests.observability._scrape import scrape
from tests.utils import serval_children, wait_for


@serval.deployment(num_replicas=2)
def hello(request: Request) -> str:
    return "hello"


@serval.deployment
class Counting:
    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "tenant_requests", description="Requests by tenant.", tag_keys=("tenant",)
        )
        self.size = metrics.Histogram("body_bytes", boundaries=[10, 100], tag_keys=("tenant",))
        self.last = metrics.Gauge("last_size")

    async def __call__(self, request: Request) -> str:
        tenant = request.query_params["tenant"]
        body = await request.body()
        self.requests.inc(tags={"tenant": tenant})
        self.size.observe(len(body), tags={"tenant": tenant})
        self.last.set(len(body))
        return tenant


def test_exact_counts_of_known_traffic(serve: str) -> None:
    serval.run(hello.bind(), name="h", route_prefix="/hello")
    with httpx.Client(base_url=serve, timeout=30) as c:
        for _ in range(7):
            assert c.get("/hello").status_code == 200
        for _ in range(2):
            assert c.post("/hello", content=b"x").status_code == 200
        for _ in range(3):
            assert c.get("/nowhere").status_code == 404

    m = scrape(serve)
    route = {"application": "h", "deployment": "hello", "route": "/hello"}
    assert m.value("serval_http_requests_total", method="GET", status_code="200", **route) == 7
    assert m.value("serval_http_requests_total", method="POST", status_code="200", **route) == 2
    assert m.value("serval_http_requests_total", route="__unmatched__", status_code="404") == 3
    assert m.value("serval_http_request_errors_total", status_code="404") == 3
    assert m.value("serval_http_request_errors_total", **route) == 0
    assert m.value("serval_http_request_latency_seconds_count", **route) == 9
    assert m.value("serval_http_request_latency_seconds_bucket", le="+Inf", **route) == 9
    assert m.types["serval_http_request_latency_seconds"] == "histogram"
    # both replicas answered the scrape, each with its own label; together they served 9
    replicas = m.label_values("serval_replica_ongoing_requests", "replica")
    assert len(replicas) == 2
    assert m.value("serval_replica_processing_latency_seconds_count", deployment="hello") == 9
    assert m.value("serval_deployment_replicas", deployment="hello", state="RUNNING") == 2
    assert m.value("serval_deployment_target_replicas", deployment="hello") == 2
    assert m.value("serval_metrics_scrape_processes", process="replica") == 2
    assert m.value("serval_metrics_scrape_processes", process="controller") == 1
    assert m.value("serval_router_queued_requests", deployment="hello") == 0
    # each family's HELP/TYPE once, though three processes contributed
    text = httpx.get(f"{serve}/-/metrics", timeout=30).text
    assert text.count("# TYPE serval_replica_ongoing_requests gauge") == 1


def test_user_metrics_carry_the_replica_tags(serve: str) -> None:
    serval.run(Counting.bind(), name="users", route_prefix="/count")
    with httpx.Client(base_url=serve, timeout=30) as c:
        for tenant, body in (("a", b"12345"), ("a", b"x" * 50), ("b", b"")):
            assert c.post("/count", params={"tenant": tenant}, content=body).status_code == 200

    m = scrape(serve)
    (replica,) = m.label_values("serval_replica_ongoing_requests", "replica")
    tags = {"application": "users", "deployment": "Counting", "replica": replica}
    assert m.value("tenant_requests_total", tenant="a", **tags) == 2
    assert m.value("tenant_requests_total", tenant="b", **tags) == 1
    assert m.types["tenant_requests"] == "counter"
    assert m.value("body_bytes_bucket", tenant="a", le="10.0") == 1
    assert m.value("body_bytes_bucket", tenant="a", le="100.0") == 2
    assert m.value("body_bytes_count", tenant="b", **tags) == 1
    assert m.value("last_size", **tags) == 0
    assert not [n for n, _, _ in m.samples if n.endswith("_created")]


@serval.deployment(num_replicas=2, health_check_period_s=60)
class Sleepy:
    async def __call__(self, request: Request) -> str:
        if request.query_params.get("block"):
            time.sleep(float(request.query_params["block"]))  # blocks this replica's loop
        return str(os.getpid())


def test_scrape_answers_while_replicas_restart_or_hang(serve: str) -> None:
    serval.run(Sleepy.bind(), name="s", route_prefix="/s")
    wait_for(lambda: scrape(serve).value("serval_metrics_scrape_processes", process="replica") == 2)

    # A replica whose event loop is blocked does not answer in time: left out, still 200.
    def block() -> None:
        httpx.get(f"{serve}/s", params={"block": "10"}, timeout=60)

    thread = threading.Thread(target=block)
    thread.start()
    wait_for(
        lambda: scrape(serve).value("serval_metrics_scrape_processes", process="replica") == 1,
        timeout_s=8,
        what="a scrape without the blocked replica",
    )
    thread.join()

    # A replica killed: scrapes go on answering 200 while it is replaced.
    replicas = [p for p in serval_children() if "serval.replica" in " ".join(p.cmdline())]
    assert len(replicas) == 2
    os.kill(replicas[0].pid, signal.SIGKILL)
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = scrape(serve)  # asserts 200 each time
        seen.append(m.value("serval_metrics_scrape_processes", process="replica"))
        if seen[-1] == 2 and m.value("serval_replica_restarts_total", deployment="Sleepy") == 1:
            break
        time.sleep(0.05)
    assert seen[-1] == 2, seen
    assert m.value("serval_replica_restarts_total", deployment="Sleepy") == 1
    assert m.value("serval_deployment_replicas", deployment="Sleepy", state="RUNNING") == 2


def test_metrics_can_be_switched_off(
    serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVAL_METRICS", "0")
    serval.start(http_options={"port": http_port})
    serval.run(hello.bind(), name="h", route_prefix="/hello")
    base = f"http://127.0.0.1:{http_port}"
    assert httpx.get(f"{base}/hello", timeout=30).status_code == 200
    r = httpx.get(f"{base}/-/metrics", timeout=30)
    assert r.status_code == 404 and "SERVAL_METRICS=0" in r.text


def test_the_scrape_needs_the_admin_token_when_one_is_set(serval_home: str, http_port: int) -> None:
    token = "scrape-admin-token-0123"
    serval.start(http_options={"port": http_port, "admin_token": token})
    serval.run(hello.bind(), name="h", route_prefix="/hello")
    base = f"http://127.0.0.1:{http_port}"
    assert httpx.get(f"{base}/hello", timeout=30).status_code == 200
    assert httpx.get(f"{base}/-/metrics", timeout=30).status_code == 401
    wrong = {"authorization": "Bearer not-the-token-at-all"}
    assert httpx.get(f"{base}/-/metrics", headers=wrong, timeout=30).status_code == 403
    r = httpx.get(f"{base}/-/metrics", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200 and "serval_http_requests_total" in r.text
    assert httpx.get(f"{base}/-/healthz", timeout=30).status_code == 200  # probes stay open
