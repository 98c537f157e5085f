"""A deployment's own request router, through real processes: the proxy's router (HTTP),
a driver's handle router and a replica's handle router (composition), config files,
bad class paths and a router that raises."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

import serval
from serval.config import RequestRouterConfig
from serval.exceptions import ConfigError
from tests.request_router.apps import Front, LocalByScore, Scored, scores
from tests.utils import free_port, short_tmpdir, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APPS = "tests.request_router.apps"


@pytest.fixture
def registry() -> Iterator[str]:
    with short_tmpdir("reg") as path:
        yield path


def _routed(prefer: str) -> RequestRouterConfig:
    return RequestRouterConfig(
        request_router_class=f"{APPS}:ByScore",
        request_router_kwargs={"prefer": prefer},
        request_routing_stats_period_s=0.2,
    )


def _answers(client: httpx.Client, n: int = 8) -> set[str]:
    """Which replicas answered n requests over HTTP, from the driver's handle, and from
    a handle inside the Front replica."""
    seen = set()
    handle = serval.get_deployment_handle("Scored", "scored")
    for _ in range(n):
        seen.add(client.get("/scored").json()["replica"])
        seen.add(handle.remote().result(timeout_s=30)["replica"])
        seen.add(client.get("/front").json()["replica"])
    return seen


def test_the_user_router_picks_the_replica_for_http_and_handle_calls(
    client: httpx.Client, registry: str
) -> None:
    serval.run(
        Scored.options(request_router_config=_routed("high")).bind(registry),
        name="scored",
        route_prefix="/scored",
    )
    serval.run(Front.bind(), name="front", route_prefix="/front")
    by_score = scores(registry)
    assert len(by_score) == 3
    best = max(by_score, key=by_score.__getitem__)
    # (a router may hear of the last replica a moment after run() returned)
    wait_for(lambda: client.get("/scored").json()["replica"] == best, what="all replicas")
    assert _answers(client) == {best}

    # New kwargs, same code: no replica restarts, every router swaps its instance.
    serval.run(
        Scored.options(request_router_config=_routed("low")).bind(registry),
        name="scored",
        route_prefix="/scored",
    )
    worst = min(by_score, key=by_score.__getitem__)
    wait_for(lambda: client.get("/scored").json()["replica"] == worst, what="the new router")
    wait_for(
        lambda: (
            serval.get_deployment_handle("Scored", "scored").remote().result()["replica"] == worst
        ),
        what="the driver's router to swap",
    )
    wait_for(lambda: client.get("/front").json()["replica"] == worst, what="Front's router")
    assert _answers(client) == {worst}
    assert scores(registry) == by_score  # the same three replicas


def test_a_class_given_directly_runs_in_every_router_on_each_runtime(
    runtime_client: httpx.Client, registry: str
) -> None:
    """The class itself (pickled by value for the proxy), with LocalityMixin: routers and
    replicas agree on their node (the machine, or on Ray the Ray node)."""
    config = RequestRouterConfig(
        request_router_class=LocalByScore, request_routing_stats_period_s=0.2
    )
    serval.run(
        Scored.options(request_router_config=config, num_replicas=2).bind(registry),
        name="scored",
        route_prefix="/scored",
    )
    by_score = scores(registry)
    best = max(by_score, key=by_score.__getitem__)
    wait_for(lambda: runtime_client.get("/scored").json()["replica"] == best, what="both")
    handle = serval.get_deployment_handle("Scored", "scored")
    seen = set()
    for _ in range(8):
        seen.add(runtime_client.get("/scored").json()["replica"])
        seen.add(handle.remote().result(timeout_s=30)["replica"])
    assert seen == {best}


def test_a_raising_router_falls_back_to_servals_choice_and_logs_once(
    serval_home: str, client: httpx.Client, registry: str
) -> None:
    broken = RequestRouterConfig(request_router_class=f"{APPS}:Broken")
    serval.run(
        Scored.options(request_router_config=broken).bind(registry),
        name="scored",
        route_prefix="/scored",
    )
    handle = serval.get_deployment_handle("Scored", "scored")
    seen = set()
    for _ in range(15):
        r = client.get("/scored")
        assert r.status_code == 200
        seen.add(r.json()["replica"])
        seen.add(handle.remote().result(timeout_s=30)["replica"])
    assert len(seen) > 1  # serval's own choice spreads the load again

    def proxy_log() -> str:
        text = ""
        for path in glob.glob(os.path.join(serval_home, "t", "logs", "proxy*")):
            with open(path) as f:
                text += f.read()
        return text

    wait_for(lambda: "this router is broken on purpose" in proxy_log(), what="the proxy's log")
    assert proxy_log().count("choose_replicas raised RuntimeError") == 1


def test_bad_router_classes_fail_at_decoration_naming_the_option() -> None:
    option = "'request_router_config.request_router_class'"
    cases = {
        "no_such_module:Router": "cannot import module 'no_such_module'",
        f"{APPS}:Missing": "has no attribute 'Missing'",
        f"{APPS}:Scored": "is not a subclass of serval.request_router.RequestRouter",
    }
    for path, why in cases.items():
        with pytest.raises(ConfigError) as info:
            Scored.options(request_router_config={"request_router_class": path})
        assert (
            option in str(info.value) and repr(path) in str(info.value) and why in str(info.value)
        )
    with pytest.raises(ConfigError, match=r"request_router_config\.request_router_class"):
        serval.deployment(request_router_config={"request_router_class": int})(Front.func_or_class)
    with pytest.raises(ConfigError, match="request_router_kwargs"):
        Scored.options(
            request_router_config={
                "request_router_class": f"{APPS}:ByScore",
                "request_router_kwargs": {"x": object()},
            }
        )


def _serval_cli(*args: str, home: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVAL_HOME": home, "SERVAL_NAMESPACE": "t"}
    return subprocess.run(
        [sys.executable, "-m", "serval.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_config_file_deploys_the_router_and_a_bad_path_is_named(
    serval_home: str, registry: str, tmp_path: object
) -> None:
    port = free_port()
    config = f"""
http_options: {{port: {port}}}
applications:
  - name: scored
    route_prefix: /scored
    import_path: {APPS}:scored_app
    args: {{registry: {registry}}}
    deployments:
      - name: Scored
        num_replicas: 2
        request_router_config:
          request_router_class: {APPS}:ByScore
          request_router_kwargs: {{prefer: low}}
          request_routing_stats_period_s: 0.2
"""
    path = os.path.join(str(tmp_path), "serval.yaml")
    with open(path, "w") as f:
        f.write(config)
    deployed = _serval_cli("deploy", path, home=serval_home)
    assert deployed.returncode == 0, deployed.stderr
    assert "request_router_config" not in deployed.stderr  # no "not supported" notice
    by_score = scores(registry)
    worst = min(by_score, key=by_score.__getitem__)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        wait_for(lambda: c.get("/scored").json()["replica"] == worst, what="both replicas")
        assert {c.get("/scored").json()["replica"] for _ in range(10)} == {worst}

    running = _serval_cli("config", home=serval_home)
    assert running.returncode == 0, running.stderr
    assert f"request_router_class: {APPS}:ByScore" in running.stdout

    with open(path, "w") as f:
        f.write(config.replace(f"{APPS}:ByScore", f"{APPS}:NoSuchRouter"))
    bad = _serval_cli("deploy", path, home=serval_home)
    assert bad.returncode == 1
    said = "".join(bad.stderr.split())  # the console wraps long lines
    assert "applications[0].deployments[0].request_router_config.request_router_class" in said
    assert "hasnoattribute'NoSuchRouter'" in said
