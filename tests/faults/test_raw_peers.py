"""Raw peers without the instance secret sending frames (a pickled ``Call`` that would
create a file when unpickled, and garbage) to a replica's and the controller's sockets
while traffic flows: nothing is decoded, every peer is dropped and counted, and the
traffic does not notice."""

from __future__ import annotations

import glob
import os
import pickle
import socket

import pytest
from starlette.requests import Request

import serval
from serval.transport.auth import SERVER_HELLO_BYTES
from serval.transport.connection import encode_frame
from serval.transport.messages import Call
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord
from tests.observability._scrape import scrape
from tests.utils import DecodeMarker

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ROUNDS = 5


@serval.deployment
async def echo(request: Request) -> dict[str, str]:
    return {"ok": "yes"}


def _send_raw(path: str, data: bytes, read_hello: bool) -> bytes:
    """Connect, send ``data`` (after the greeting or at once); all the server sent back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(path)
        got = b""
        if read_hello:
            while len(got) < SERVER_HELLO_BYTES:
                chunk = sock.recv(SERVER_HELLO_BYTES - len(got))
                assert chunk, "closed before the greeting"
                got += chunk
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return got


def test_raw_peers(serve: str, serval_home: str, fault_report: FaultRecord) -> None:
    serval.run(echo.bind(), name="echo", route_prefix="/echo")
    state = os.path.join(serval_home, "t")
    (replica_sock,) = glob.glob(os.path.join(state, "r", "*.sock"))
    targets = [replica_sock, os.path.join(state, "controller.sock")]
    marker = os.path.join(serval_home, "pwned")
    frame = bytes(encode_frame(1, Call("__call__", pickle.dumps(((DecodeMarker(marker),), {})))))
    attacks = [frame, frame * 50, os.urandom(4096)]
    before = scrape(serve).value("serval_transport_rejected_peers_total")
    sent = 0
    with Traffic(f"{serve}/echo", threads=2) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(50)
        fault_report.inject("raw peers: pickled Call frames, garbage")
        for _ in range(ROUNDS):
            for path in targets:
                for data in attacks:
                    for read_hello in (True, False):
                        got = _send_raw(path, data, read_hello)
                        sent += 1
                        assert len(got) <= SERVER_HELLO_BYTES  # the greeting, no reply
        traffic.wait_ok(50)
    fault_report.fault = f"{sent} raw peers: pickled Call frames, garbage"
    assert not os.path.exists(marker), "a raw peer's payload was unpickled"
    rejected = scrape(serve).value("serval_transport_rejected_peers_total") - before
    assert rejected == sent, (rejected, sent)
    assert (len(traffic.failed), len(traffic.lost)) == (0, 0), traffic.summary()
