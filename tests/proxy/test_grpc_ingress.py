"""The gRPC ingress (Ray Serve's grpc_options), through a stock grpcio client.

The protobuf module is generated at test time with grpcio-tools, as a user would."""

from __future__ import annotations

import asyncio
import glob
import os
import socket
import sys
import textwrap
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import serval
import serval as serve
from serval.exceptions import ConfigError, ServalError
from tests.conftest import RUNTIMES
from tests.observability._scrape import scrape
from tests.utils import free_port, wait_for

PROTO = """
syntax = "proto3";
package greet;
service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Count (HelloRequest) returns (stream HelloReply);
}
message HelloRequest { string name = 1; int32 n = 2; }
message HelloReply { string message = 1; }
"""


@pytest.fixture(scope="module")
def protos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """greet_pb2 / greet_pb2_grpc generated into a temp dir on sys.path."""
    from grpc_tools import protoc

    out = str(tmp_path_factory.mktemp("protos"))
    with open(os.path.join(out, "greet.proto"), "w") as f:
        f.write(textwrap.dedent(PROTO))
    code = protoc.main(
        ["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}", "greet.proto"]
    )
    assert code == 0
    sys.path.insert(0, out)
    yield out
    sys.path.remove(out)
    for name in ("greet_pb2", "greet_pb2_grpc"):
        sys.modules.pop(name, None)


def _greeter(prefix: str) -> Any:
    """A deployment implementing the Greeter service (defined here: pickled by value)."""

    @serve.deployment(max_ongoing_requests=1, max_queued_requests=0)
    class Greeter:
        def SayHello(self, request: Any) -> Any:  # the RPC's name
            import greet_pb2

            if request.name == "boom":
                raise ValueError("the greeter exploded")
            if request.name == "slow":
                import time

                time.sleep(request.n)
            model = serve.get_multiplexed_model_id()
            return greet_pb2.HelloReply(message=f"{prefix} {request.name}{model}")

        async def Count(self, request: Any) -> Any:
            import greet_pb2

            for i in range(request.n):
                yield greet_pb2.HelloReply(message=f"{request.name}{i}")

    return Greeter


@pytest.fixture(params=RUNTIMES)
def grpc_serve(
    request: pytest.FixtureRequest,
    protos: str,
    serval_home: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Any, Any, str]]:
    """serval with the gRPC ingress on a free port (on each runtime); yields
    (target, pb2, pb2_grpc, the HTTP base URL)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([protos, os.environ.get("PYTHONPATH", "")]))
    if request.param == "ray":
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port, http_port = free_port(), free_port()
    serval.start(
        runtime=request.param,
        http_options={"port": http_port, "request_timeout_s": 3},
        grpc_options={
            "port": port,
            "grpc_servicer_functions": ["greet_pb2_grpc:add_GreeterServicer_to_server"],
            "request_timeout_s": 3,
        },
    )
    import greet_pb2
    import greet_pb2_grpc

    yield f"127.0.0.1:{port}", greet_pb2, greet_pb2_grpc, f"http://127.0.0.1:{http_port}"


def test_unary_streaming_metadata_routing_and_errors(
    grpc_serve: tuple[str, Any, Any, str],
) -> None:
    target, pb2, pb2_grpc, base = grpc_serve
    serval.run(_greeter("Hello").bind(), name="en", route_prefix=None)
    with grpc.insecure_channel(target) as channel:
        stub = pb2_grpc.GreeterStub(channel)
        # one application: no metadata needed
        assert stub.SayHello(pb2.HelloRequest(name="ada")).message == "Hello ada"
        serval.run(_greeter("Bonjour").bind(), name="fr", route_prefix=None)
        reply = stub.SayHello(pb2.HelloRequest(name="ada"), metadata=[("application", "fr")])
        assert reply.message == "Bonjour ada"
        reply = stub.SayHello(
            pb2.HelloRequest(name="ada"),
            metadata=[("application", "en"), ("multiplexed_model_id", "@m7")],
        )
        assert reply.message == "Hello ada@m7"
        stream = stub.Count(pb2.HelloRequest(name="n", n=4), metadata=[("application", "en")])
        assert [r.message for r in stream] == ["n0", "n1", "n2", "n3"]

        with pytest.raises(grpc.RpcError) as info:
            stub.SayHello(pb2.HelloRequest(name="x"), metadata=[("application", "de")])
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'de'" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.SayHello(pb2.HelloRequest(name="x"))  # two apps now: which one?
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'application' metadata" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.SayHello(pb2.HelloRequest(name="boom"), metadata=[("application", "en")])
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "ValueError: the greeter exploded" in info.value.details()

    # Every call above is in the proxy's metrics, by application, method and status.
    m = scrape(base)
    hello = {"method": "greet.Greeter/SayHello"}
    assert m.value("serval_grpc_requests_total", application="en", status_code="OK", **hello) == 2
    assert m.value("serval_grpc_requests_total", application="fr", status_code="OK", **hello) == 1
    count = {"method": "greet.Greeter/Count", "status_code": "OK"}
    assert m.value("serval_grpc_requests_total", application="en", **count) == 1
    assert m.value("serval_grpc_request_errors_total", status_code="NOT_FOUND") == 2
    assert m.value("serval_grpc_request_errors_total", status_code="INTERNAL", **hello) == 1
    assert m.value("serval_grpc_request_errors_total", status_code="OK") == 0
    assert m.value("serval_grpc_request_latency_seconds_count") == 7
    assert m.types["serval_grpc_requests"] == "counter"


def test_overload_and_timeout(grpc_serve: tuple[str, Any, Any, str]) -> None:
    target, pb2, pb2_grpc, _ = grpc_serve
    serval.run(_greeter("Hello").bind(), name="en", route_prefix=None)

    async def calls() -> list[Any]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb2_grpc.GreeterStub(channel)
            slow = stub.SayHello(pb2.HelloRequest(name="slow", n=1))
            await asyncio.sleep(0.3)  # the one slot is taken, and no queue is allowed
            refused = stub.SayHello(pb2.HelloRequest(name="x"))
            return await asyncio.gather(slow, refused, return_exceptions=True)

    slow, refused = asyncio.run(calls())
    assert not isinstance(slow, Exception), slow
    assert slow.message == "Hello slow"
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(refused.trailing_metadata() or ())["retry-after"] == "1"

    with grpc.insecure_channel(target) as channel:
        stub = pb2_grpc.GreeterStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.SayHello(pb2.HelloRequest(name="slow", n=5))  # request_timeout_s=3
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_servicer_function_that_does_not_import_fails_at_start(serval_home: str) -> None:
    for path, words in [
        ("no_such_pb2_grpc:add_XServicer_to_server", "cannot import 'no_such_pb2_grpc:"),
        ("os:getcwd", "is not a generated add_XServicer_to_server"),
        ("not-a-path", "grpc_servicer_functions"),
    ]:
        with pytest.raises(ConfigError, match=words):
            serval.start(grpc_options={"port": free_port(), "grpc_servicer_functions": [path]})


OIP_SERVICER = (
    "serval.protocols.oip.grpc_predict_v2_pb2_grpc:add_GRPCInferenceServiceServicer_to_server"
)


@pytest.mark.parametrize("holder", ["socket", "grpc server"])
def test_a_grpc_port_in_use_fails_at_start_naming_it(serval_home: str, holder: str) -> None:
    port = free_port()
    if holder == "socket":
        taken: Any = socket.create_server(("127.0.0.1", port))
        release = taken.close
    else:  # grpcio binds with SO_REUSEPORT by default: it must not share the port
        taken = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        taken.add_insecure_port(f"127.0.0.1:{port}")
        taken.start()
        release = lambda: taken.stop(None)  # noqa: E731
    try:
        with pytest.raises(ServalError, match=f"gRPC port {port} on 127.0.0.1 is already in use"):
            serval.start(
                http_options={"host": "127.0.0.1", "port": free_port()},
                grpc_options={"port": port, "grpc_servicer_functions": [OIP_SERVICER]},
            )
    finally:
        release()


def test_client_errors_are_one_line_in_the_proxys_log(
    protos: str, serval_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([protos, os.environ.get("PYTHONPATH", "")]))
    port = free_port()
    serval.start(
        http_options={"port": free_port()},
        grpc_options={
            "port": port,
            "grpc_servicer_functions": ["greet_pb2_grpc:add_GreeterServicer_to_server"],
        },
    )
    import greet_pb2
    import greet_pb2_grpc

    serval.run(_greeter("Hello").bind(), name="en", route_prefix=None)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = greet_pb2_grpc.GreeterStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.SayHello(greet_pb2.HelloRequest(name="x"), metadata=[("application", "de")])

    def proxy_log() -> str:
        text = ""
        for path in glob.glob(os.path.join(serval_home, "t", "logs", "proxy*")):
            with open(path) as f:
                text += f.read()
        return text

    line = "gRPC greet.Greeter/SayHello: NOT_FOUND: application 'de' not found"
    wait_for(lambda: line in proxy_log(), what="the proxy's log line")
    assert "Traceback" not in proxy_log()
