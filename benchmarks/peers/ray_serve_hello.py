"""Ray Serve's side of ``benchmarks/http_overhead.py --runtime ray`` (the peers' virtualenv).

Starts a local Ray instance (or joins ``--address``), writes its GCS address to
``--address-file`` so that serval joins the same cluster, and serves the same hello
world as serval's deployment (``benchmarks/_bare_app.py: hello``) with Ray Serve at
``/`` on ``--port``, configured as Ray Serve's performance guide recommends for
throughput (``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``, ``max_ongoing_requests=100``).
Serves until SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user cluster

MAX_ONGOING_REQUESTS = 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address-file", required=True)
    parser.add_argument("--address", default="", help="join this cluster (default: a new one)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import ray
    from ray import serve

    from benchmarks._bare_app import hello

    if args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    Path(args.address_file).write_text(ray.get_runtime_context().gcs_address)

    @serve.deployment(max_ongoing_requests=MAX_ONGOING_REQUESTS)
    def hello_world(request: Any) -> str:
        return hello()

    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(hello_world.bind(), name="hello", route_prefix="/")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


if __name__ == "__main__":
    main()
