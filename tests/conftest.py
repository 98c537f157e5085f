"""Shared fixtures: a real serval instance per test, and the real services tests use."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import serval
from tests._services import redis_url as redis_url
from tests.utils import free_port, serval_children, short_tmpdir, wait_for


@pytest.fixture
def serval_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An isolated SERVAL_HOME; whatever the test started is shut down afterwards."""
    with short_tmpdir() as home:
        monkeypatch.setenv("SERVAL_HOME", home)
        monkeypatch.setenv("SERVAL_NAMESPACE", "t")
        try:
            yield home
        finally:
            serval.shutdown()
            wait_for(
                lambda: not serval_children(),
                timeout_s=30,
                what="serval processes to exit after shutdown",
            )


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def serve(serval_home: str, http_port: int) -> Iterator[str]:
    """A running serval instance on a free port; yields its base URL."""
    serval.start(http_options={"port": http_port})
    yield f"http://127.0.0.1:{http_port}"


@pytest.fixture
def client(serve: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve, timeout=30) as c:
        yield c


RUNTIMES = ["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])]


@pytest.fixture(params=RUNTIMES)
def runtime_serve(
    request: pytest.FixtureRequest,
    serval_home: str,
    http_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A running instance on each runtime (the same tests run on both); yields its URL."""
    if request.param == "ray":
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    serval.start(http_options={"port": http_port}, runtime=request.param)
    yield f"http://127.0.0.1:{http_port}"


@pytest.fixture
def runtime_client(runtime_serve: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=runtime_serve, timeout=60) as c:
        yield c
