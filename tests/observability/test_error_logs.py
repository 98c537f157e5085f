"""Client errors are one short log line; user-code tracebacks name the user's file."""

from __future__ import annotations

import glob
import os

import httpx
import pytest

import serval
from serval.apps._tenants import generate
from serval.apps.many_models import ManyModelsConfig, build_app
from tests.utils import wait_for


def _logs(home: str, pattern: str = "*.log") -> dict[str, str]:
    out = {}
    for path in glob.glob(os.path.join(home, "t", "logs", pattern)):
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)] = f.read()
    return out


def _all_text(home: str) -> str:
    return "".join(_logs(home).values())


def test_user_traceback_names_the_users_file_and_line(
    serval_home: str, client: httpx.Client
) -> None:
    # Defined in a function body, so it is pickled by value (cloudpickle would name its
    # code "<dynamic-code>").
    @serval.deployment
    class Faulty:
        async def __call__(self, request: object) -> str:
            raise RuntimeError("user code broke")  # THE-LINE

    serval.run(Faulty.bind(), name="faulty", route_prefix="/faulty")
    r = client.get("/faulty", headers={"x-request-id": "tb-1"})
    assert r.status_code == 500 and "user code broke" in r.text
    with open(__file__, encoding="utf-8") as f:
        line = next(i for i, text in enumerate(f, 1) if "THE-LINE" in text and "raise" in text)
    where = f'File "{__file__}", line {line}, in __call__'
    wait_for(lambda: where in _all_text(serval_home), what="the traceback in the replica log")
    text = _all_text(serval_home)
    assert "<dynamic-code>" not in text
    assert 'raise RuntimeError("user code broke")' in text  # the source line is shown
    # A handle caller's ReplicaError carries the same traceback.
    handle = serval.get_app_handle("faulty")
    with pytest.raises(serval.exceptions.ReplicaError) as info:
        handle.remote(None).result()
    assert where in info.value.remote_traceback


def test_client_errors_are_one_line_without_traceback(
    serval_home: str, http_port: int, tmp_path: object
) -> None:
    registry = os.path.join(str(tmp_path), "registry")
    for _ in generate(registry, 3):
        pass
    serval.start(http_options={"port": http_port})
    config = ManyModelsConfig(registry=registry, shared_replicas=1, max_models_per_replica=4)
    serval.run(build_app(config), name="mm", route_prefix="/mm")
    base = f"http://127.0.0.1:{http_port}"
    long_id = "tenant" + "x" * 5000
    r = httpx.post(f"{base}/mm/score", json={"tenant": long_id, "data": [[1, 2, 3, 4]]}, timeout=60)
    assert r.status_code == 404
    r = httpx.get(f"{base}/no/such/route", timeout=30)
    assert r.status_code == 404
    # The 404 route: one INFO line in the proxy's log.
    wait_for(
        lambda: "no route" in "".join(_logs(serval_home, "proxy*").values()),
        what="the proxy's line for the 404",
    )
    proxy = "".join(_logs(serval_home, "proxy*").values())
    lines = [line for line in proxy.splitlines() if "/no/such/route" in line]
    assert len(lines) == 1 and " INFO " in lines[0] and "404 GET /no/such/route" in lines[0]
    # The unknown model: one short line per replica that saw it, no traceback anywhere.
    wait_for(
        lambda: "ModelNotFoundError" in _all_text(serval_home),
        what="the unknown model's log line",
    )
    text = _all_text(serval_home)
    assert "Traceback" not in text, text
    mentions = [
        line for line in text.splitlines() if "tenantxxx" in line and "serval.access" not in line
    ]
    assert mentions, text
    for line in mentions:
        assert " INFO " in line and "404 ModelNotFoundError" in line
        assert len(line) < 600 and "more chars" in line
