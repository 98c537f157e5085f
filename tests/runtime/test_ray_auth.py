"""On the ray runtime, replicas listen on TCP: a raw peer on the network runs nothing."""

from __future__ import annotations

import os
import pickle
import socket
from typing import Any

import pytest

import serval
from serval import _process
from serval.runtime._ray_cluster import ray_namespace
from serval.runtime._ray_hosts import REPLICA_PREFIX
from serval.transport.auth import MAGIC, SERVER_HELLO_BYTES
from serval.transport.connection import encode_frame
from serval.transport.messages import Call, GetInfo
from tests.utils import DecodeMarker


@serval.deployment
class Echo:
    def __call__(self, x: Any) -> Any:
        return x


def _attack(address: str, frame: bytes) -> bytes:
    host, _, port = address.removeprefix("tcp:").rpartition(":")
    got = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(frame)  # at once, as the reported exploit did
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    return got


def _rejected_by_controller() -> int:
    ctx = _process.current()
    info: dict[str, Any] = ctx.run_sync(ctx.controller.call(GetInfo()), timeout_s=30)
    return int(info["rejected_peers"])


@pytest.mark.ray
@pytest.mark.slow
def test_a_raw_tcp_call_frame_to_a_replica_or_the_controller_runs_nothing(
    ray_serve: str, serval_home: str
) -> None:
    import ray

    handle = serval.run(Echo.bind(), name="echo", route_prefix="/echo")
    namespace = ray_namespace("t")
    (name,) = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace and a["name"].startswith(REPLICA_PREFIX)
    ]
    replica = ray.get(ray.get_actor(name, namespace=namespace).start.remote())
    controller = _process.current().controller_address
    assert replica.startswith("tcp:") and controller.startswith("tcp:")
    before = _rejected_by_controller()

    marker = os.path.join(serval_home, "pwned")
    payload = pickle.dumps(((DecodeMarker(marker),), {}))
    pickle.loads(payload)[0][0].close()  # the payload is armed: unpickling makes the file
    os.unlink(marker)
    frame = encode_frame(1, Call("__call__", payload))
    for address in (replica, controller):
        got = _attack(address, frame)
        assert got.startswith(MAGIC) and len(got) == SERVER_HELLO_BYTES  # no reply frame
    assert not os.path.exists(marker)
    assert _rejected_by_controller() == before + 1
    assert handle.remote(41).result() == 41  # the instance's own connections still work
