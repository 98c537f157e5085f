"""The Redis warm tier killed and restarted mid-run: requests keep being answered
(from the registry), the outage is counted once, and the tier is used again after."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import serval
from tests._services import start_redis_server
from tests.faults._models import Scorer, make_registry, scoring, tier_stats
from tests.faults._traffic import Traffic
from tests.faults.conftest import FaultRecord
from tests.utils import free_port, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


class OwnRedis:
    """A redis-server of this test's own on a free port (never the shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="svredis")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = start_redis_server(self.port, self.workdir)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    redis = OwnRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.close()


def test_redis_outage(
    serve: str, tmp_path: Path, own_redis: OwnRedis, fault_report: FaultRecord
) -> None:
    registry = make_registry(tmp_path / "registry", ["a@1", "b@1"])
    serval.run(
        Scorer.bind(
            registry=str(registry),
            warm=own_redis.url,
            warm_retry_s=0.5,
            hmac_key=secrets.token_hex(16),
        ),
        name="s",
        route_prefix="/s",
    )
    request = scoring(f"{serve}/s", ["a@1", "b@1"])
    with Traffic(f"{serve}/s", threads=2, request=request) as traffic:
        fault_report.add(traffic)
        wait_for(lambda: tier_stats("s")["warm"]["hits"] >= 5, timeout_s=60, what="warm hits")
        fault_report.inject("redis-server kill -9, restart")
        own_redis.kill()
        wait_for(lambda: tier_stats("s")["warm"]["outages"] == 1, timeout_s=60, what="the outage")
        traffic.wait_ok(40)  # served from the registry meanwhile
        down = tier_stats("s")
        assert down["warm"]["outages"] == 1  # counted (and logged) once, not per request
        own_redis.start()  # same port, empty

        def used_again() -> bool:
            warm = tier_stats("s")["warm"]
            return warm["loads"] > down["warm"]["loads"] and warm["hits"] > down["warm"]["hits"]

        wait_for(used_again, timeout_s=60, what="the warm tier used again")
        fault_report.recovered()
        traffic.wait_ok(20)
    assert (len(traffic.failed), len(traffic.lost)) == (0, 0), traffic.summary()
    assert tier_stats("s")["warm"]["outages"] == 1
