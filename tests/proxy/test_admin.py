"""The admin API: token required, models listed, user_config changed live."""

from __future__ import annotations

import httpx
from starlette.requests import Request

import serval
from tests.utils import free_port

TOKEN = "s3cret-admin-token"


@serval.deployment(
    num_replicas=2, user_config={"greeting": "hello"}, graceful_shutdown_wait_loop_s=0.2
)
class Greeter:
    def reconfigure(self, config: dict) -> None:
        self.greeting = config["greeting"]

    def __call__(self, request: Request) -> str:
        return self.greeting


def test_admin_api_auth_and_operations(serval_home: str) -> None:
    port = free_port()
    serval.start(http_options={"port": port, "admin_token": TOKEN})
    serval.run(Greeter.bind(), name="g", route_prefix="/g")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    r = httpx.get(f"{base}/-/admin/models")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(f"{base}/-/admin/models", headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 403

    r = httpx.get(f"{base}/-/admin/models", headers=auth)
    assert r.status_code == 200
    assert set(r.json()) == {"g/Greeter"} and len(r.json()["g/Greeter"]) == 2

    r = httpx.put(
        f"{base}/-/admin/user_config",
        headers=auth,
        json={"app": "g", "deployment": "Greeter", "user_config": {"greeting": "hi"}},
    )
    assert r.status_code == 200, r.text
    assert {httpx.get(f"{base}/g").text for _ in range(10)} == {"hi"}

    r = httpx.put(f"{base}/-/admin/user_config", headers=auth, content=b"{oops")
    assert r.status_code == 400 and "malformed JSON" in r.text
    r = httpx.put(f"{base}/-/admin/user_config", headers=auth, json={"app": "g"})
    assert r.status_code == 400 and "deployment" in r.text
    r = httpx.put(
        f"{base}/-/admin/user_config",
        headers=auth,
        json={"app": "g", "deployment": "Nope", "user_config": {}},
    )
    assert r.status_code == 404 and "Nope" in r.text
    r = httpx.post(
        f"{base}/-/admin/models/explode",
        headers=auth,
        json={"app": "g", "deployment": "Greeter", "model_ids": ["m"]},
    )
    assert r.status_code == 404 and "unknown operation" in r.text
    assert "admin_token" not in str(serval.api._call_status_raw())


def test_admin_api_is_off_without_a_token(client: httpx.Client) -> None:
    r = client.get("/-/admin/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404


def test_models_cli_uses_the_admin_api(serval_home: str) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    serval.start(http_options={"port": port, "admin_token": TOKEN})
    serval.run(Greeter.bind(), name="g", route_prefix="/g")
    env = {**os.environ, "SERVAL_HOME": serval_home, "SERVAL_NAMESPACE": "t"}

    def cli(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
        extra = ["--token", token] if token else []
        return subprocess.run(
            [sys.executable, "-m", "serval.cli", "models", *extra, *args],
            env={k: v for k, v in env.items() if k != "SERVAL_ADMIN_TOKEN"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = cli("ls")
    assert r.returncode == 0, r.stderr
    assert "g/Greeter" in r.stdout
    assert cli("ls", token="wrong-token").returncode == 1
    r = cli("ls", token=None)
    assert r.returncode == 1 and "needs a token" in r.stderr
    r = cli("prewarm", "g/Greeter", "tenant1")
    assert r.returncode == 0, r.stderr
    assert "no @serval.multiplexed model cache" in r.stdout  # each replica says why
