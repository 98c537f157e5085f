"""tracing_config: OpenTelemetry spans across proxy → replica → handle calls, real processes."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import httpx
import pytest
from starlette.requests import Request

import serval
import serval as serve
from serval.exceptions import ConfigError
from tests.utils import wait_for

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@serve.deployment
class Downstream:
    def hello(self, name: str) -> str:
        return f"hi {name}"


@serve.deployment
class AsyncIngress:
    def __init__(self, down: serve.DeploymentHandle) -> None:
        self.down = down

    async def __call__(self, request: Request) -> str:
        result: str = await self.down.hello.remote(request.query_params["name"])
        return result


@serve.deployment
class SyncIngress:
    def __init__(self, down: serve.DeploymentHandle) -> None:
        self.down = down

    def __call__(self, request: Request) -> str:  # runs in a thread: context must follow
        result: str = self.down.hello.remote(request.query_params["name"]).result()
        return result


def _spans(home: str) -> list[dict[str, Any]]:
    out = []
    for path in glob.glob(os.path.join(home, "t", "spans", "*.jsonl")):
        with open(path) as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def _trace(home: str, trace_id: str, count: int) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        spans = [s for s in _spans(home) if s["trace_id"] == trace_id]
        return spans if len(spans) >= count else None

    result: list[dict[str, Any]] = wait_for(found, timeout_s=20, what=f"{count} spans")
    return result


@pytest.mark.parametrize("ingress", [AsyncIngress, SyncIngress])
def test_one_trace_from_the_client_through_proxy_replica_and_handle(
    serval_home: str, http_port: int, ingress: Any
) -> None:
    serval.start(http_options={"port": http_port}, tracing_config={"enabled": True})
    serve.run(ingress.bind(Downstream.bind()), name="t", route_prefix="/t")
    r = httpx.get(
        f"http://127.0.0.1:{http_port}/t",
        params={"name": "ada"},
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        timeout=30,
    )
    assert r.text == "hi ada"
    spans = {s["component"].split("-")[0]: s for s in _trace(serval_home, CLIENT_TRACE, 3)}
    by_name = {s["name"]: s for s in _trace(serval_home, CLIENT_TRACE, 3)}
    proxy = by_name["GET /t"]
    assert proxy["parent_id"] == CLIENT_SPAN  # continues the client's trace
    assert proxy["attributes"]["http.response.status_code"] == 200
    replica = by_name[f"{ingress.name} GET"]
    assert replica["parent_id"] == proxy["span_id"]
    called = by_name["Downstream.hello"]
    assert called["parent_id"] == replica["span_id"]  # the handle call carried the context
    assert set(spans) == {"proxy", "replica"}


def test_sampling_ratio_zero_records_nothing_and_a_custom_exporter(
    serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = os.path.join(serval_home, "custom-spans.jsonl")
    monkeypatch.setenv("TRACING_TEST_OUT", out)
    serval.start(
        http_options={"port": http_port},
        tracing_config={
            "enabled": True,
            "sampling_ratio": 0.0,
            "exporter_import_path": "tests.observability.test_tracing:custom_exporter",
        },
    )
    serve.run(AsyncIngress.bind(Downstream.bind()), name="t", route_prefix="/t")
    for _ in range(5):
        assert httpx.get(f"http://127.0.0.1:{http_port}/t", params={"name": "x"}).text == "hi x"
    # A sampled client trace is still followed (parent-based sampling) ...
    httpx.get(
        f"http://127.0.0.1:{http_port}/t",
        params={"name": "y"},
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
    )

    def written() -> list[dict[str, Any]] | None:
        if not os.path.exists(out):
            return None
        with open(out) as f:
            spans = [json.loads(line) for line in f]
        return spans if len(spans) >= 3 else None

    spans = wait_for(written, timeout_s=20, what="spans from the custom exporter")
    # ... and the unsampled requests left none: every span is the client's trace.
    assert {s["trace_id"] for s in spans} == {CLIENT_TRACE}
    assert _spans(serval_home) == []  # the default file exporter was not used


def custom_exporter() -> list[Any]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from serval.observability.tracing import json_lines_exporter

    return [SimpleSpanProcessor(json_lines_exporter(os.environ["TRACING_TEST_OUT"]))]


def test_tracing_off_by_default_and_bad_config(serval_home: str, http_port: int) -> None:
    with pytest.raises(ConfigError, match="'sampling_ratio'"):
        serval.start(tracing_config={"enabled": True, "sampling_ratio": 2})
    for path, words in [
        ("no_such_module:exporter", "cannot import 'no_such_module:exporter'"),
        ("os:sep", "'os:sep' is not a function"),
    ]:
        with pytest.raises(ConfigError, match=f"exporter_import_path: {words}"):
            serval.start(tracing_config={"enabled": True, "exporter_import_path": path})
    serval.start(http_options={"port": http_port})
    serve.run(AsyncIngress.bind(Downstream.bind()), name="t", route_prefix="/t")
    assert httpx.get(f"http://127.0.0.1:{http_port}/t", params={"name": "x"}).text == "hi x"
    assert _spans(serval_home) == []
