"""Every bad input and failure the HTTP path promises a clear answer for."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import time

import httpx
import pytest
from starlette.requests import Request

import serval
import serval as serve
from serval.exceptions import ConfigError, DeploymentFailedError, ServalError
from tests.utils import free_port, wait_for


@serve.deployment
def boom(request: Request) -> str:
    raise ValueError("the model exploded")


@serve.deployment
async def echo_json(request: Request) -> dict:
    return {"got": await request.json()}


@serve.deployment(max_ongoing_requests=1, max_queued_requests=1)
async def slow(request: Request) -> str:
    await asyncio.sleep(float(request.query_params.get("s", "1")))
    return "done"


@serve.deployment
class BrokenInit:
    def __init__(self) -> None:
        raise RuntimeError("cannot load weights from /nowhere")

    def __call__(self, request: Request) -> str:
        return "never"


@serve.deployment(graceful_shutdown_timeout_s=1)
class CountedBrokenInit:
    def __init__(self, attempts: str) -> None:
        with open(attempts, "a") as f:
            f.write("x")
        raise RuntimeError("cannot start")

    def __call__(self, request: Request) -> str:
        return "never"


def test_unknown_route_is_404_naming_the_path(client: httpx.Client) -> None:
    serve.run(echo_json.bind(), name="e", route_prefix="/echo")
    r = client.get("/nothing/here")
    assert r.status_code == 404
    assert "/nothing/here" in r.text
    assert client.get("/echoes").status_code == 404  # a prefix matches whole segments only
    assert client.get("/-/healthz").text == "success"
    assert client.get("/-/routes").json() == {"/echo": "e"}


def test_user_exception_is_500_with_short_message(client: httpx.Client) -> None:
    serve.run(boom.bind(), name="b", route_prefix="/boom")
    r = client.get("/boom")
    assert r.status_code == 500
    assert "ValueError: the model exploded" in r.text
    assert "Traceback" not in r.text  # the traceback goes to the logs, not the client
    assert r.headers["x-request-id"]


def test_malformed_json_is_400(client: httpx.Client) -> None:
    serve.run(echo_json.bind(), name="e", route_prefix="/echo")
    assert client.post("/echo", json={"a": 1}).json() == {"got": {"a": 1}}
    r = client.post("/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "malformed JSON" in r.text


def test_oversized_body_is_413(serval_home: str) -> None:
    port = free_port()
    serval.start(http_options={"port": port, "max_request_body_bytes": 1000})
    serve.run(echo_json.bind(), name="e", route_prefix="/echo")
    r = httpx.post(f"http://127.0.0.1:{port}/echo", content=b"x" * 5000)
    assert r.status_code == 413
    assert "1000 bytes" in r.text
    # chunked upload without a content-length is cut off too
    r = httpx.post(f"http://127.0.0.1:{port}/echo", content=iter([b"x" * 600, b"y" * 600]))
    assert r.status_code == 413


def test_full_queue_is_503_with_retry_after(client: httpx.Client, serve: str) -> None:
    serve_ = serval
    serve_.run(slow.bind(), name="s", route_prefix="/slow")

    def get(_: int) -> httpx.Response:
        return httpx.get(f"{serve}/slow", params={"s": "1.5"}, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(get, range(6)))
    codes = sorted(r.status_code for r in responses)
    # one running, one queued; the other four are refused at once
    assert codes.count(200) == 2, codes
    assert codes.count(503) == 4, codes
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert "max_queued_requests=1" in refused.text


def test_backpressure_config_answers_429_with_its_retry_after(
    client: httpx.Client, serve: str
) -> None:
    """Ray Serve's backpressure_config: a full queue answers 429 and the Retry-After asked."""
    polite = slow.options(backpressure_config={"status_code": 429, "retry_after_s": 7})
    serval.run(polite.bind(), name="p", route_prefix="/polite")

    def get(_: int) -> httpx.Response:
        return httpx.get(f"{serve}/polite", params={"s": "1.5"}, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(get, range(5)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 2 and codes.count(429) == 3, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"backpressure_config": {"status_code": 500}}, "backpressure_config.status_code"),
        ({"backpressure_config": {"retry_after_s": -1}}, "backpressure_config.retry_after_s"),
        ({"max_constructor_retry_count": 0}, "max_constructor_retry_count"),
        ({"rolling_update_percentage": 1.5}, "rolling_update_percentage"),
        ({"max_surge_percent": 101}, "max_surge_percent"),
    ],
)
def test_ray_rollout_and_backpressure_options_are_checked_at_decoration(
    options: dict[str, object], option: str
) -> None:
    with pytest.raises(ConfigError, match=f"'{option}'"):
        serve.deployment(**options)(boom.func_or_class)


def test_max_constructor_retry_count_bounds_the_failed_starts(serve: str, tmp_path: object) -> None:
    attempts = os.path.join(str(tmp_path), "attempts")
    counted = CountedBrokenInit.options(num_replicas=2, max_constructor_retry_count=2)
    with pytest.raises(DeploymentFailedError, match="cannot start"):
        serval.run(counted.bind(attempts), name="c", route_prefix="/c")
    assert serval.status().applications["c"].status == "DEPLOY_FAILED"
    time.sleep(1.0)  # and no more attempts after the deployment failed
    with open(attempts) as f:
        assert len(f.read()) == 2  # (3 per replica × 2 replicas = 6 without the option)


def test_request_timeout_is_408(serval_home: str) -> None:
    port = free_port()
    serval.start(http_options={"port": port, "request_timeout_s": 0.3})
    serve.run(slow.bind(), name="s", route_prefix="/slow")
    r = httpx.get(f"http://127.0.0.1:{port}/slow", params={"s": "3"}, timeout=30)
    assert r.status_code == 408
    assert "timed out" in r.text
    # The replica was told to stop: the next request is served without waiting 3 s.
    r = httpx.get(f"http://127.0.0.1:{port}/slow", params={"s": "0"}, timeout=30)
    assert r.status_code == 200


def test_constructor_failure_reports_traceback_and_stops_retrying(serve: str) -> None:
    with pytest.raises(DeploymentFailedError) as info:
        serval.run(BrokenInit.bind(), name="broken", route_prefix="/broken")
    text = str(info.value)
    assert "cannot load weights from /nowhere" in text
    assert "Traceback" in text
    st = serval.status().applications["broken"]
    assert st.status == "DEPLOY_FAILED"
    # the last failed replica is gone soon, and no new one is started
    wait_for(
        lambda: (
            serval.status().applications["broken"].deployments["BrokenInit"].replica_states == {}
        ),
        what="failed replicas to be cleaned up",
    )
    time.sleep(1.0)
    assert serval.status().applications["broken"].deployments["BrokenInit"].replica_states == {}
    # A good version of the same app deploys over the failed one.
    serval.run(echo_json.bind(), name="broken", route_prefix="/broken")
    assert serval.status().applications["broken"].status == "RUNNING"


def test_port_in_use_is_a_clear_error(serval_home: str) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        with pytest.raises(ServalError, match=f"port {port} on 127.0.0.1 is already in use"):
            serval.start(http_options={"port": port})


def test_route_prefix_conflict_and_bad_prefix(serve: str) -> None:
    serval.run(echo_json.bind(), name="a", route_prefix="/x")
    with pytest.raises(ValueError, match="already used by application 'a'"):
        serval.run(echo_json.bind(), name="b", route_prefix="/x")
    with pytest.raises(ValueError, match="must start with '/'"):
        serval.run(echo_json.bind(), name="c", route_prefix="x")
