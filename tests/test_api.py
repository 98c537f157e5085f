"""End to end through real processes and real HTTP: the core scenario of serval."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.requests import Request

import serval
import serval as serve
from tests.utils import serval_children


@serve.deployment
def hello(request: Request) -> str:
    return f"Hello {request.query_params['name']}!"


@serve.deployment(num_replicas=2, user_config={"weight": 0.5})
class SimpleModel:
    def __init__(self, bias: float):
        self.bias = bias
        self.weight = 0.0

    def reconfigure(self, config: dict) -> None:
        self.weight = config["weight"]

    async def __call__(self, request: Request | float) -> dict:
        data = float(request.query_params["data"]) if isinstance(request, Request) else request
        return {
            "prediction": data * self.weight + self.bias,
            "replica": serve.get_replica_context().replica_id.unique_id,
        }


@serve.deployment(num_replicas=2)
class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Request) -> dict:
        self.count += 1
        return {"count": self.count, "replica": serve.get_replica_context().replica_tag}


def test_issue_scenario(runtime_client: httpx.Client) -> None:
    serve.run(hello.bind(), name="hello", route_prefix="/hello")
    handle = serve.run(SimpleModel.bind(1.0), name="simple", route_prefix="/simple")

    assert handle.remote(2.0).result()["prediction"] == pytest.approx(2.0)
    r = runtime_client.get("/hello", params={"name": "x"})
    assert r.status_code == 200
    assert r.text == "Hello x!"
    assert r.headers["content-type"].startswith("text/plain")
    r = runtime_client.get("/simple", params={"data": "3"})
    assert r.json()["prediction"] == pytest.approx(2.5)
    assert r.headers["content-type"] == "application/json"

    st = serve.status()
    assert st.applications["hello"].status == "RUNNING"
    assert st.applications["simple"].deployments["SimpleModel"].replica_states == {"RUNNING": 2}


def test_counter_counts_per_replica(runtime_client: httpx.Client) -> None:
    serve.run(Counter.bind(), name="counter", route_prefix="/counter")
    seen: dict[str, list[int]] = {}
    for _ in range(40):
        body = runtime_client.get("/counter").json()
        seen.setdefault(body["replica"], []).append(body["count"])
    assert len(seen) == 2, "both replicas should get traffic"
    for counts in seen.values():
        assert counts == list(range(1, len(counts) + 1))


def test_user_config_change_reconfigures_without_restart(runtime_client: httpx.Client) -> None:
    handle = serve.run(SimpleModel.bind(1.0), name="simple", route_prefix="/simple")
    before = {handle.remote(1.0).result()["replica"] for _ in range(20)}
    serve.run(
        SimpleModel.options(user_config={"weight": 2.0}).bind(1.0),
        name="simple",
        route_prefix="/simple",
    )
    results = [handle.remote(1.0).result() for _ in range(20)]
    assert {r["prediction"] for r in results} == {3.0}
    assert {r["replica"] for r in results} == before, "replicas must not restart"


def test_legacy_deploy_and_list_deployments(client: httpx.Client) -> None:
    hello.deploy()
    assert client.get("/hello", params={"name": "old"}).text == "Hello old!"
    deployments = serve.list_deployments()
    assert set(deployments) == {"hello"}
    assert deployments["hello"].route_prefix == "/hello"
    assert deployments["hello"].func_or_class.__name__ == "hello"
    hello.delete()
    assert serve.list_deployments() == {}
    assert client.get("/hello").status_code == 404


def test_handles_by_name(runtime_client: httpx.Client) -> None:
    serve.run(SimpleModel.bind(10.0), name="simple", route_prefix=None)
    assert serve.get_app_handle("simple").remote(0.0).result()["prediction"] == 10.0
    dh = serve.get_deployment_handle("SimpleModel", app_name="simple")
    assert dh.remote(2.0).result()["prediction"] == 11.0
    with pytest.raises(serval.exceptions.NotFoundError, match="nope"):
        serve.get_app_handle("nope")


def test_shutdown_leaves_no_process_behind(serve: str) -> None:
    serve_ = serval
    serve_.run(Counter.bind(), name="counter", route_prefix="/counter")
    assert len(serval_children()) >= 4  # controller, proxy, two replicas
    serve_.shutdown()
    assert serval_children() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{serve}/counter", timeout=2)


def test_run_blocks_until_running_and_status_reports(client: httpx.Client) -> None:
    serve.run(SimpleModel.options(num_replicas=3).bind(0.0), name="s", route_prefix="/s")
    st = serve.status()
    app = st.applications["s"]
    assert app.status == serve.ApplicationStatus.RUNNING
    assert app.route_prefix == "/s"
    assert app.deployments["SimpleModel"].status == serve.DeploymentStatus.HEALTHY
    assert st.proxies == {"proxy-0": "HEALTHY"}
    serve.delete("s")
    assert "s" not in serve.status().applications


def test_run_many_deploys_apps_together_and_returns_their_handles(client: httpx.Client) -> None:
    handles = serve.run_many(
        [
            serve.RunTarget(hello.bind(), name="hi", route_prefix="/hi"),
            serve.RunTarget(
                SimpleModel.bind(1.0),
                name="model",
                route_prefix=None,
                logging_config={"enable_access_log": False},
            ),
        ]
    )
    assert client.get("/hi", params={"name": "x"}).text == "Hello x!"
    assert handles[1].remote(2.0).result()["prediction"] == 2.0
    status = serve.status().applications
    assert status["hi"].status == status["model"].status == serve.ApplicationStatus.RUNNING
    deployed = {d["name"]: d["config"] for d in serval.api._call_list_raw()}
    assert deployed["SimpleModel"]["logging_config"] == {"enable_access_log": False}
    with pytest.raises(serval.exceptions.ConfigError, match="unique; repeated: \\['a'\\]"):
        serve.run_many([serve.RunTarget(hello.bind(), name="a")] * 2)
    with pytest.raises(serval.exceptions.ConfigError, match=r"targets\[0\] must be a RunTarget"):
        serve.run_many([hello.bind()])  # type: ignore[list-item]


async def test_shutdown_async(serve: str) -> None:
    serve_ = serval
    await asyncio.to_thread(serve_.run, hello.bind(), name="hi", route_prefix="/hi")
    await serve_.shutdown_async()
    assert serval_children() == []


def test_proxy_location_disabled_runs_no_proxy(serval_home: str, http_port: int) -> None:
    serval.start(http_options={"port": http_port}, proxy_location="Disabled")
    handle = serve.run(SimpleModel.bind(3.0), name="m", route_prefix=None)
    assert handle.remote(0.0).result()["prediction"] == 3.0
    assert serve.status().proxies == {}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{http_port}/-/healthz", timeout=2)


def test_bad_proxy_location_and_the_ray_exception_root(serval_home: str) -> None:
    with pytest.raises(serval.exceptions.ConfigError, match="'proxy_location' = 'Nowhere'"):
        serval.start(proxy_location="Nowhere")
    assert serval.exceptions.RayServeException is serval.exceptions.ServalError
    assert issubclass(
        serval.exceptions.DeploymentFailedError, serval.exceptions.DeploymentUnavailableError
    )
