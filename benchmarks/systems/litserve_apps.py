"""LitServe's side of the hello-world and batching scenarios.

    python -m benchmarks.systems.litserve_apps serve {hello,batching}

Configured for throughput as LitServe's docs describe: CPU workers, ``fast_queue=True``
(ZeroMQ between the API server and the workers), batching on the ``LitAPI``
(``max_batch_size``, ``batch_timeout``, the values serval and Ray Serve get). LitServe
accepts a JSON POST on ``/predict`` only: every system in these scenarios gets the
same POST. Needs the peers' virtualenv (``make bench-env``).
"""

# No `from __future__ import annotations`: LitServe reads the annotations of
# decode_request and encode_response as objects, to build its FastAPI endpoint.
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import argparse
import os
import signal
import threading
import time
from typing import Any

import litserve as ls

from benchmarks._harness.procs import free_port
from benchmarks.systems import _child
from benchmarks.systems._handlers import MAX_BATCH, hello


# Module level: LitServe pickles the API into its worker processes.
class Hello(ls.LitAPI):  # type: ignore[misc]
    def setup(self, device: Any) -> None:
        pass

    # `request` unannotated, as in LitServe's docs: the endpoint then takes the JSON body.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return request

    def predict(self, x: Any) -> str:
        return hello()

    def encode_response(self, output: str) -> str:
        return output


class Batched(ls.LitAPI):  # type: ignore[misc]
    """The same model as serval's and Ray Serve's (benchmarks/batching.py)."""

    def setup(self, device: Any) -> None:
        import threadpoolctl

        from benchmarks.batching import Model

        threadpoolctl.threadpool_limits(1)
        self.model = Model()

    def decode_request(self, request) -> int:  # type: ignore[no-untyped-def]
        return int(request.get("i", 0))

    def predict(self, idx: list[int]) -> list[float]:
        out: list[float] = self.model(list(idx))
        return out

    def encode_response(self, output: float) -> float:
        return float(output)


def _api(name: str) -> Any:
    if name == "hello":
        return Hello()
    if name == "batching":
        return Batched(max_batch_size=MAX_BATCH, batch_timeout=0.01)
    raise ValueError(f"unknown app {name!r}")


def _announce_then_watch_stdin(url: str, started: float) -> None:
    _child.report_ready(url, started)
    _child.wait_for_stdin_eof()
    os.kill(os.getpid(), signal.SIGINT)  # LitServer.run stops its workers on Ctrl+C


def cmd_serve(name: str) -> None:
    started = time.perf_counter()
    port = free_port()
    server = ls.LitServer(_api(name), accelerator="cpu", fast_queue=True)
    url = f"http://127.0.0.1:{port}/predict"
    threading.Thread(target=_announce_then_watch_stdin, args=(url, started), daemon=True).start()
    try:
        server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("app", choices=("hello", "batching"))
    args = p.parse_args(argv)
    cmd_serve(args.app)


if __name__ == "__main__":
    main()
