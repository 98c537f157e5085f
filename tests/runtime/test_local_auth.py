"""On a real local instance, only processes of the instance get a frame decoded."""

from __future__ import annotations

import glob
import os
import pickle
import socket
from typing import Any

import httpx
import pytest

import serval
from serval import _driver
from serval.transport.auth import CLIENT_PROOF_BYTES, MAGIC, SERVER_HELLO_BYTES
from serval.transport.connection import encode_frame
from serval.transport.messages import Call
from tests.observability._scrape import scrape
from tests.utils import DecodeMarker


@serval.deployment
class Echo:
    def __call__(self, x: Any) -> Any:
        return x if isinstance(x, int) else "ok"  # a handle's int, or an HTTP request


def _attack(path: str, frame: bytes, read_hello: bool) -> bytes:
    """Connect to a unix socket, send ``frame`` (after the greeting, or at once), and
    return everything the server sends before it hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(path)
        got = b""
        if read_hello:
            while len(got) < SERVER_HELLO_BYTES:
                chunk = sock.recv(SERVER_HELLO_BYTES - len(got))
                assert chunk, "closed before greeting"
                got += chunk
        try:
            sock.sendall(frame)
            while chunk := sock.recv(65536):  # ends when the server hangs up
                got += chunk
        except ConnectionResetError:  # dropped with unread bytes: a reset
            pass
        return got


@pytest.mark.parametrize("read_hello", [True, False], ids=["after-greeting", "at-once"])
def test_a_raw_call_frame_to_a_replica_or_the_controller_runs_nothing(
    capfd: pytest.CaptureFixture[str], serval_home: str, http_port: int, read_hello: bool
) -> None:
    serval.start(http_options={"port": http_port})  # here: its processes log into capfd
    serve = f"http://127.0.0.1:{http_port}"
    handle = serval.run(Echo.bind(), name="echo", route_prefix="/echo")
    state = os.path.join(serval_home, "t")
    replica_socks = glob.glob(os.path.join(state, "r", "*.sock"))
    assert len(replica_socks) == 1
    controller_sock = os.path.join(state, "controller.sock")
    before = _driver.connect()["rejected_peers"]

    marker = os.path.join(serval_home, "pwned")
    payload = pickle.dumps(((DecodeMarker(marker),), {}))
    pickle.loads(payload)[0][0].close()  # the payload is armed: unpickling makes the file
    os.unlink(marker)
    frame = encode_frame(1, Call("__call__", payload))
    for path in (*replica_socks, controller_sock):
        for _ in range(3):
            got = _attack(path, frame, read_hello)
            assert got.startswith(MAGIC) and len(got) == SERVER_HELLO_BYTES  # no reply
    assert not os.path.exists(marker)
    assert _driver.connect()["rejected_peers"] == before + 3

    rejected = scrape(serve).labels_of("serval_transport_rejected_peers_total")
    assert len(rejected) == 2  # the replica's and the controller's
    assert scrape(serve).value("serval_transport_rejected_peers_total") == 6

    # Real clients are unaffected.
    assert handle.remote(41).result() == 41
    assert httpx.post(f"{serve}/echo", content=b"x", timeout=30).text == "ok"
    logged = [
        line for line in capfd.readouterr().err.splitlines() if "rejected a connection" in line
    ]
    # One line per process (later rejections are summed up once a minute), naming it.
    assert len(logged) == 2, logged
    assert sum(" (replica " in line for line in logged) == 1
    assert sum(" (controller pid=" in line for line in logged) == 1
    assert all("before decoding anything" in line for line in logged)


def test_a_proof_with_another_secret_is_refused(serve: str, serval_home: str) -> None:
    controller_sock = os.path.join(serval_home, "t", "controller.sock")
    before = _driver.connect()["rejected_peers"]
    got = _attack(controller_sock, os.urandom(CLIENT_PROOF_BYTES), read_hello=True)
    assert len(got) == SERVER_HELLO_BYTES  # the greeting, then nothing: no server proof
    assert _driver.connect()["rejected_peers"] == before + 1
