"""A serval on a fresh local Ray instance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import serval


@pytest.fixture
def ray_serve(serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """serval on the ray runtime (a new local Ray instance); yields the proxy's URL."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    serval.start(http_options={"port": http_port}, runtime="ray")
    yield f"http://127.0.0.1:{http_port}"
