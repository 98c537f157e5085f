"""``make run``'s demo, run as a user runs it: one-shot with --once, and serving until
Ctrl-C (the signal sent to the whole process group, as a terminal does)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from tests.utils import free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _instance_processes(home: str) -> list[psutil.Process]:
    """The processes of the instance in ``home`` (the demo's children are not ours)."""
    out = []
    for p in psutil.process_iter():
        try:
            if home in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _demo(serval_home: str, tmp: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "serval.apps.many_models_demo",
        "--tenants",
        "12",
        "--requests",
        "60",
        "--concurrency",
        "4",
        "--port",
        str(port),
        "--registry",
        os.path.join(tmp, "registry"),
        *extra,
    ]


def _figure(stdout: str, name: str) -> str:
    """A row of the demo's table: ``│ errors │ 0 │`` -> ``0``."""
    found = re.search(rf"│\s*{re.escape(name)}\s*│ ([^│]*?)\s*│", stdout)
    assert found, stdout[-3000:]
    return found.group(1)


def test_once_runs_the_burst_and_exits(serval_home: str, tmp_path: object) -> None:
    run = subprocess.run(
        _demo(serval_home, str(tmp_path), free_port(), "--once"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "hot-cache hit ratio" in run.stdout and "now served by" in run.stdout
    assert "keeps serving" not in run.stdout
    assert _figure(run.stdout, "errors") == "0"


@pytest.mark.slow
@pytest.mark.demo
@pytest.mark.timeout(1200)
def test_once_at_the_default_tenant_count(serval_home: str, tmp_path: object) -> None:
    """``make run`` as it is: the default tenant count (10,000), generated, served, the
    burst answered without an error, and the table reporting what happened."""
    registry = os.path.join(str(tmp_path), "registry")
    port_and_registry = ["--port", str(free_port()), "--registry", registry]
    run = subprocess.run(
        [sys.executable, "-m", "serval.apps.many_models_demo", "--once", *port_and_registry],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tenants = [n for n in os.listdir(registry) if os.path.isdir(os.path.join(registry, n, "1"))]
    assert len(tenants) == 10_000, len(tenants)
    assert "10000 tenants in" in run.stdout
    requests = re.fullmatch(
        r"([\d,]+) \(([\d,]+) distinct of 10,000 tenants\)", _figure(run.stdout, "requests")
    )
    assert requests, run.stdout[-3000:]
    sent, distinct = (int(g.replace(",", "")) for g in requests.groups())
    assert sent == 4000 and 1 < distinct <= 4000
    assert _figure(run.stdout, "errors") == "0"
    loads = int(_figure(run.stdout, "model loads (into replica memory)"))
    assert loads >= distinct  # every distinct tenant was loaded at least once
    warm, cold = _figure(run.stdout, "of which from the warm tier / the registry").split(" / ")
    # A fresh warm tier: each tenant came from the registry once (twice when a second
    # replica loaded it before the first one's warm-tier write landed).
    assert int(warm) + int(cold) == loads and int(cold) >= distinct
    assert "now served by pool1" in run.stdout
    assert "'model_name': 'tenant3'" in run.stdout


@pytest.mark.slow
@pytest.mark.demo
def test_keeps_serving_prints_urls_and_stops_on_ctrl_c(serval_home: str, tmp_path: object) -> None:
    port = free_port()
    out_path = os.path.join(str(tmp_path), "out.txt")
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            _demo(serval_home, str(tmp_path), port, "--trickle", "5"),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as in a terminal
            env={**os.environ, "COLUMNS": "250"},
        )
    try:

        def printed() -> str:
            with open(out_path) as f:
                text = f.read()
            return text if "serval keeps serving" in text and "logs " in text else ""

        text = wait_for(printed, timeout_s=300, what="the demo's URLs")
        base = f"http://127.0.0.1:{port}"
        token = re.search(rf"{re.escape(base)}/-/dashboard#token=(\S+)", text)
        assert token, text
        assert "models ls" in text
        curl = re.search(r"curl -s (\S+) -H '([^']+)' -d '([^']+)'", text)
        assert curl and curl.group(1) == f"{base}/score", text
        r = httpx.post(
            curl.group(1),
            content=curl.group(3),
            headers=dict([curl.group(2).split(": ", 1)]),
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["tenant"] == "tenant7", r.text
        headers = {"authorization": f"Bearer {token.group(1)}"}
        data = httpx.get(f"{base}/-/dashboard/data", headers=headers, timeout=30).json()
        assert data["applications"][0]["name"] == "many_models"
        scrape = re.search(
            r"curl -s (\S+/-/metrics) -H \"authorization: Bearer \$\(cat (\S+)\)\"", text
        )
        assert scrape and scrape.group(1) == f"{base}/-/metrics", text
        with open(os.path.join(ROOT, scrape.group(2))) as f:  # the command works as printed
            assert f.read().strip() == token.group(1)
        assert httpx.get(f"{base}/-/metrics", timeout=30).status_code == 401
        r = httpx.get(f"{base}/-/metrics", headers=headers, timeout=30)
        assert "serval_http_requests_total" in r.text
        # The trickle keeps traffic flowing while it serves.
        before = data["routes"][0]["requests"]
        wait_for(
            lambda: (
                httpx.get(f"{base}/-/dashboard/data", headers=headers, timeout=30).json()["routes"][
                    0
                ]["requests"]
                > before
            ),
            what="trickle requests",
        )
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=120) == 0
        with open(out_path) as f:
            tail = f.read()[len(text) :]
        assert "Traceback" not in tail and "KeyboardInterrupt" not in tail, tail
        wait_for(lambda: not _instance_processes(serval_home), timeout_s=60, what="serval to stop")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
