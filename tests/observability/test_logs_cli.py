"""``serval logs`` against a real instance's files; the files rotate."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading

import httpx
import pytest

import serval
from serval.context import get_replica_context
from tests.utils import wait_for


@serval.deployment(num_replicas=2)
class Who:
    async def __call__(self, request: object) -> str:
        return get_replica_context().replica_tag


def _serval_logs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serval.cli", "logs", *args],
        env=dict(os.environ),  # the fixture's SERVAL_HOME / SERVAL_NAMESPACE
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serval_logs_prints_one_replicas_lines(serval_home: str, client: httpx.Client) -> None:
    serval.run(Who.bind(), name="who", route_prefix="/who")
    seen: dict[str, list[str]] = {}
    for i in range(40):
        rid = f"cli-{i}"
        seen.setdefault(client.get("/who", headers={"x-request-id": rid}).text, []).append(rid)
    assert len(seen) == 2, seen  # both replicas answered
    replica, mine = next(iter(seen.items()))
    (other,) = [r for r in seen if r != replica]
    wait_for(
        lambda: all(
            f"request_id={rid} " in _serval_logs("--replica", replica).stdout for rid in mine
        ),
        what="the replica's access lines through serval logs",
    )
    out = _serval_logs("--replica", replica).stdout
    assert f"replica {replica} " in out
    assert not any(f"request_id={rid} " in out for rid in seen[other])
    everything = _serval_logs("-n", "0").stdout
    assert "(controller pid=" in everything and all(
        f"request_id={rid} " in everything for rids in seen.values() for rid in rids
    )
    missing = _serval_logs("--replica", "nosuchreplica")
    assert missing.returncode == 1 and "nosuchreplica" in missing.stderr


def test_serval_logs_follow_prints_new_lines(serval_home: str, client: httpx.Client) -> None:
    serval.run(Who.options(num_replicas=1).bind(), name="who", route_prefix="/who")
    proc = subprocess.Popen(
        [sys.executable, "-m", "serval.cli", "logs", "--follow", "--component", "replica"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        assert client.get("/who", headers={"x-request-id": "followed-1"}).status_code == 200
        wait_for(
            lambda: any("request_id=followed-1 " in line for line in lines),
            what="serval logs --follow to print the new request's line",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_log_files_rotate(
    serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVAL_LOG_MAX_BYTES", "4000")
    monkeypatch.setenv("SERVAL_LOG_BACKUP_COUNT", "2")
    serval.start(http_options={"port": http_port})
    serval.run(Who.options(num_replicas=1).bind(), name="who", route_prefix="/who")
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}") as c:
        for i in range(200):
            assert c.get("/who", headers={"x-request-id": f"rot-{i}"}).status_code == 200
    logs = os.path.join(serval_home, "t", "logs")
    wait_for(lambda: glob.glob(os.path.join(logs, "replica_*.log.2")), what="two rotated files")
    assert not glob.glob(os.path.join(logs, "replica_*.log.3"))
    for path in glob.glob(os.path.join(logs, "replica_*.log*")):
        assert os.path.getsize(path) <= 4000 + 400
