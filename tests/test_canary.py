"""Canary releases through real processes: weights, stickiness, auto-rollback, promote."""

from __future__ import annotations

import collections
import concurrent.futures

import httpx
import pytest
from starlette.requests import Request

import serval
from serval.exceptions import ConfigError
from tests.utils import wait_for


@serval.deployment(num_replicas=1, graceful_shutdown_wait_loop_s=0.2)
class Versioned:
    def __init__(self, version: str, fail: bool = False) -> None:
        self.version = version
        self.fail = fail

    def __call__(self, request: Request) -> str:
        if self.fail:
            raise RuntimeError(f"{self.version} is broken")
        return self.version


def _count(url: str, n: int, headers: dict[str, str] | None = None) -> collections.Counter:
    """Answers of n requests from 8 threads (one keep-alive client each)."""

    def worker(k: int) -> list[str]:
        with httpx.Client(timeout=30, headers=headers) as c:
            out = []
            for _ in range(k):
                r = c.get(url)
                out.append(r.text if r.status_code == 200 else f"error {r.status_code}")
            return out

    shares = [n // 8 + (1 if i < n % 8 else 0) for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return collections.Counter(a for part in pool.map(worker, shares) for a in part)


@pytest.mark.slow
def test_weights_within_tolerance_then_promote(serve: str) -> None:
    serval.run(Versioned.bind("v1"), name="shop", route_prefix="/shop")
    serval.run(Versioned.bind("v2"), name="shop", canary=0.2)
    counts = _count(f"{serve}/shop", 2000)
    assert set(counts) == {"v1", "v2"}
    assert 0.16 <= counts["v2"] / 2000 <= 0.24, counts  # 0.2 ± ~5 standard deviations
    canary = serval.status().applications["shop"].canary
    assert canary is not None and canary["weight"] == 0.2
    serval.promote("shop")
    assert _count(f"{serve}/shop", 50) == {"v2": 50}
    assert set(serval.status().applications) == {"shop"}


def test_sticky_header_keeps_users_on_one_version(serve: str) -> None:
    serval.run(Versioned.bind("v1"), name="shop", route_prefix="/shop")
    # Stickiness only: the latency guard (tested on its own) could roll a fresh replica's
    # canary back on a busy machine mid-test, and a user would then see both versions.
    canary = {"weight": 0.5, "sticky_header": "x-user", "max_p99_ratio": 1000.0}
    serval.run(Versioned.bind("v2"), name="shop", canary=canary)
    seen = {}
    for user in range(20):
        versions = set(_count(f"{serve}/shop", 10, {"x-user": f"user{user}"}))
        assert len(versions) == 1, versions
        seen[user] = versions.pop()
    assert set(seen.values()) == {"v1", "v2"}


def test_failing_canary_is_rolled_back_automatically(serve: str) -> None:
    serval.run(Versioned.bind("v1"), name="shop", route_prefix="/shop")
    serval.run(
        Versioned.bind("v2", fail=True), name="shop", canary={"weight": 0.3, "min_requests": 20}
    )

    def rolled_back() -> bool:
        canary = serval.status().applications["shop"].canary
        return canary is not None and "rolled_back" in canary

    def traffic_until_rolled_back() -> bool:
        _count(f"{serve}/shop", 40)
        return rolled_back()

    wait_for(traffic_until_rolled_back, timeout_s=60, what="automatic rollback")
    reason = serval.status().applications["shop"].canary["rolled_back"]  # type: ignore[index]
    assert "error rate" in reason
    wait_for(lambda: "shop@canary" not in serval.status().applications, what="canary removed")
    assert _count(f"{serve}/shop", 50) == {"v1": 50}


def test_rollback_by_hand_and_bad_canaries(serve: str) -> None:
    with pytest.raises(serval.exceptions.NotFoundError, match="not running"):
        serval.run(Versioned.bind("v2"), name="shop", canary=0.1)
    serval.run(Versioned.bind("v1"), name="shop", route_prefix="/shop")
    with pytest.raises(ConfigError, match="weight"):
        serval.run(Versioned.bind("v2"), name="shop", canary=1.5)
    serval.run(Versioned.bind("v2"), name="shop", canary=0.5)
    serval.rollback("shop")
    assert _count(f"{serve}/shop", 30) == {"v1": 30}
    with pytest.raises(serval.exceptions.NotFoundError, match="no canary"):
        serval.rollback("shop")


@serval.deployment(num_replicas=1, graceful_shutdown_wait_loop_s=0.2)
class Recorder:
    """Counts the requests it saw; answers with its version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.seen = 0

    def __call__(self, request: Request) -> str:
        self.seen += 1
        return self.version

    def count(self) -> int:
        return self.seen


def test_shadow_traffic_copies_requests_and_discards_answers(serve: str) -> None:
    serval.run(Recorder.bind("v1"), name="shop", route_prefix="/shop")
    # Latency-based rollback off: on a loaded machine the shadow's p99 may trail the
    # stable version's, and this test is about copying, not about verdicts.
    shadow = serval.run(
        Recorder.bind("v2"),
        name="shop",
        canary={"weight": 0.5, "shadow": True, "max_p99_ratio": 1000.0},
    )
    assert _count(f"{serve}/shop", 400) == {"v1": 400}  # the stable version answers all
    wait_for(
        lambda: 120 <= shadow.count.remote().result() <= 280,
        what="about half of the requests copied to the shadow",
    )
    wait_for(
        lambda: (
            (serval.status().applications["shop"].canary or {}).get("canary", {}).get("requests", 0)
            > 0
        ),
        what="shadow counts reported",
    )


def test_cli_canary_promote(serval_home: str) -> None:
    import os
    import subprocess
    import sys

    from tests.utils import free_port

    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "cc"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "serval.cli", *args],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )

    port = free_port()
    assert cli("start", "--http-port", str(port)).returncode == 0
    try:
        r = cli("deploy", "tests.apps.config_app:app", "--name", "w", "--route-prefix", "/w")
        assert r.returncode == 0, r.stderr
        r = cli("deploy", "examples.hello:model", "--name", "w", "--canary", "50%")
        assert r.returncode == 0, r.stderr
        assert "w@canary" in cli("status").stdout
        r = cli("promote", "w")
        assert r.returncode == 0, r.stderr
        body = httpx.get(f"http://127.0.0.1:{port}/w", params={"data": "2"}).json()
        assert body == {"prediction": 2.0}  # examples.hello:model now serves /w
        r = cli("rollback", "w")
        assert r.returncode == 1 and "no canary" in r.stderr
    finally:
        cli("shutdown", "-y")
