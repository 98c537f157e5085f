"""Fixtures of the model-store tests: a clean process-wide store per test, registries
on disk, a Redis of our own that a test may kill."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import serval.models as models
from serval.models import _api
from tests._services import start_redis_server
from tests.models import _data
from tests.utils import free_port


@pytest.fixture(autouse=True)
async def clean_models_state(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """No SERVAL_MODELS_* from the outside, no store or pins left by another test."""
    for var in list(os.environ):
        if var.startswith("SERVAL_MODELS_"):
            monkeypatch.delenv(var)
    yield
    await models.close()
    _api._State.config = None
    # The module, not the decorator serval.models re-exports under the same name.
    importlib.import_module("serval.models.multiplexed")._PINNED.clear()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A directory registry: iris@1 (logreg), iris@2 (forest), alias production -> 1,
    and a model whose file is corrupt."""
    root = tmp_path / "registry"
    for version, kind in (("1", "logreg"), ("2", "forest")):
        (root / "iris" / version).mkdir(parents=True)
        (root / "iris" / version / "model.joblib").write_bytes(
            _data.joblib_bytes(_data.sklearn_model(kind))
        )
    (root / "iris" / "aliases.json").write_text('{"production": "1"}')
    (root / "corrupt" / "1").mkdir(parents=True)
    (root / "corrupt" / "1" / "model.joblib").write_bytes(b"this is not a joblib file")
    return root


@pytest.fixture
def own_redis() -> Iterator[tuple[str, object]]:
    """A redis-server of this test's own on a free port: ``(url, process)``. The test
    may kill it; it is stopped afterwards either way. (Never the one on 6379.)"""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="svredis")
    proc = start_redis_server(port, workdir)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
