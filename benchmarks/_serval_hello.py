"""serval's hello world in a process of its own: the metrics-off instance that
``http_overhead.py`` measures beside the metrics-on one in the same run.

The metrics switch is read when serval's processes start, so the two variants are two
instances; this script runs the second one (the environment it gets says
``SERVAL_METRICS=0`` and its own ``SERVAL_HOME``) until SIGINT or SIGTERM.

Run: SERVAL_METRICS=0 python benchmarks/_serval_hello.py PORT [MAX_ONGOING_REQUESTS]
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.requests import Request

import serval as serve
from benchmarks import _bare_app


@serve.deployment
def hello(request: Request) -> str:
    return _bare_app.hello()


def main(argv: list[str]) -> None:
    port = int(argv[0])
    max_ongoing = int(argv[1]) if len(argv) > 1 else 5
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    serve.start(http_options={"port": port})
    try:
        serve.run(
            hello.options(max_ongoing_requests=max_ongoing).bind(), name="hello", route_prefix="/"
        )
        stop.wait()
    finally:
        serve.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
