"""Clients that hang up mid-request, among steady traffic: each handler is cancelled,
its slot freed at once (max_ongoing_requests=2: otherwise traffic would stall after
two), and the other requests are not disturbed."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from starlette.requests import Request

import serval
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord
from tests.utils import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

HANGUPS = 20


@serval.deployment(max_ongoing_requests=2)
class Waits:
    def __init__(self, marks: str) -> None:
        self.marks = Path(marks)

    async def __call__(self, request: Request) -> dict[str, str]:
        name = request.query_params.get("hangup")
        if name is None:
            await asyncio.sleep(0.002)
            return {"ok": "yes"}
        (self.marks / f"{name}.started").touch()
        try:
            await asyncio.sleep(3600)  # until the client's hang-up cancels it
        except asyncio.CancelledError:
            (self.marks / f"{name}.cancelled").touch()
            raise
        return {"ok": "too late"}


def test_client_disconnect(serve: str, tmp_path: Path, fault_report: FaultRecord) -> None:
    serval.run(Waits.bind(str(tmp_path)), name="w", route_prefix="/w")
    host, port = serve.removeprefix("http://").split(":")
    with Traffic(f"{serve}/w", threads=2) as traffic:
        fault_report.add(traffic)
        traffic.wait_ok(50)
        fault_report.inject(f"{HANGUPS} clients hang up mid-request")
        for i in range(HANGUPS):
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(f"GET /w?hangup=h{i} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                wait_for((tmp_path / f"h{i}.started").exists, timeout_s=60, what=f"h{i}")
        hung_up = time.monotonic()
        wait_for(
            lambda: len(list(tmp_path.glob("*.cancelled"))) == HANGUPS,
            timeout_s=60,
            what="every handler cancelled",
        )
        fault_report.recovery_s = time.monotonic() - hung_up  # the last hang-up: its handler
        traffic.wait_ok(50)
    fault_report.sent += HANGUPS
    assert (len(traffic.failed), len(traffic.lost)) == (0, 0), traffic.summary()
