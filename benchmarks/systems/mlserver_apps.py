"""MLServer's side of the OIP scenario: the model of benchmarks/systems/_oip.py served by
MLServer's scikit-learn runtime, OIP v2 REST on ``/v2/models/logreg/infer``.

    python -m benchmarks.systems.mlserver_apps serve oip --model PATH --mlserver BIN

MLServer runs as its own ``mlserver start`` process from its own virtualenv
(``.venv-mlserver``, made by ``make bench-env``: MLServer 1.7.1 pins fastapi < 0.116,
starlette < 0.47 and protobuf < 7, which would downgrade the stack serval, Ray Serve and
LitServe are measured on if it shared theirs). Settings: MLServer's defaults but
``parallel_workers: 0`` (inference in the server process: its parallel inference
workers crash on this kind of machine) and the ports, on 127.0.0.1. ``--http-parser``
picks uvicorn's HTTP parser: ``h11`` is what ``pip install mlserver`` gives (plain
uvicorn, no httptools); ``httptools`` (installed in its virtualenv) the faster one that
``uvicorn[standard]`` brings. For ``h11`` the virtualenv's httptools is hidden from
MLServer (a module on its path that fails to import, so uvicorn's ``auto`` falls back
to h11, exactly as on a plain install). ``--batching`` turns MLServer's adaptive
batching on (:data:`BATCHING`; off by default). This process
writes the settings, starts MLServer, reports ready once an infer call answers 200,
and stops MLServer when its stdin closes.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import argparse
import json
import os
import subprocess
import tempfile
import time

from benchmarks._harness.procs import free_port, wait_for_port
from benchmarks.systems import _child, _oip

HOST = "127.0.0.1"


def settings(http_port: int, grpc_port: int, metrics_port: int) -> dict[str, object]:
    """The server's ``settings.json``."""
    return {
        "parallel_workers": 0,
        "host": HOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }


# MLServer's adaptive batching, off by default; ``--batching`` turns it on (a tuned
# setting): up to 32 requests per model call, waiting at most 1 ms for them.
BATCHING = {"max_batch_size": 32, "max_batch_time": 0.001}


def model_settings(model_path: str, batching: bool = False) -> dict[str, object]:
    """The model's ``model-settings.json`` (MLServer's scikit-learn runtime)."""
    return {
        "name": _oip.MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": model_path, "version": _oip.VERSION},
        **(BATCHING if batching else {}),
    }


def version(mlserver: str) -> str:
    out = subprocess.run([mlserver, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().rsplit(" ", 1)[-1]


PARSERS = ("h11", "httptools")


def hide_httptools(folder: str) -> str:
    """A folder whose ``httptools`` fails to import (for PYTHONPATH): uvicorn's parser
    detection then picks h11, as on an install without httptools."""
    shim = os.path.join(folder, "no-httptools", "httptools")
    os.makedirs(shim)
    with open(os.path.join(shim, "__init__.py"), "w") as f:
        f.write("raise ImportError('httptools hidden: MLServer as pip installs it')\n")
    return os.path.dirname(shim)


def uses_httptools(pid: int) -> bool:
    """Whether process ``pid`` has httptools' extension mapped (Linux)."""
    with open(f"/proc/{pid}/maps") as f:
        return any("httptools" in line for line in f)


def cmd_serve(
    model_path: str, mlserver: str, parser: str = "httptools", batching: bool = False
) -> None:
    mlserver = os.path.abspath(mlserver)  # it starts in the settings folder
    if not os.access(mlserver, os.X_OK):
        raise SystemExit(f"MLServer is not installed at {mlserver}: run `make bench-env`")
    started = time.perf_counter()
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="svmls") as folder:
        with open(os.path.join(folder, "settings.json"), "w") as f:
            json.dump(settings(http_port, grpc_port, metrics_port), f)
        os.makedirs(os.path.join(folder, _oip.MODEL))
        with open(os.path.join(folder, _oip.MODEL, "model-settings.json"), "w") as f:
            json.dump(model_settings(os.path.abspath(model_path), batching), f)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its own venv only
        if parser == "h11":
            env["PYTHONPATH"] = hide_httptools(folder)
        proc = subprocess.Popen([mlserver, "start", folder], cwd=folder, env=env)
        try:
            wait_for_port(HOST, http_port, timeout_s=120, proc=proc)
            url = f"http://{HOST}:{http_port}{_oip.INFER_PATH}"
            startup_s = round(_child.first_response_s(url, started, body=_oip.infer_body()), 4)
            if uses_httptools(proc.pid) != (parser == "httptools"):
                raise SystemExit(f"MLServer did not start with the {parser} parser")
            _child.emit(
                "ready", url=url, startup_s=startup_s, version=version(mlserver), parser=parser
            )
            _child.wait_for_stdin_eof()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("app", choices=("oip",))
    s.add_argument("--model", required=True, help="the joblib file (benchmarks/systems/_oip.py)")
    s.add_argument("--mlserver", required=True, help="the mlserver executable")
    s.add_argument("--http-parser", choices=PARSERS, default="httptools")
    s.add_argument("--batching", action="store_true", help="adaptive batching on (tuned)")
    args = p.parse_args(argv)
    cmd_serve(args.model, args.mlserver, args.http_parser, args.batching)


if __name__ == "__main__":
    main()
