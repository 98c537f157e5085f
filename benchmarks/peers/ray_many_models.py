"""Ray Serve's side of benchmarks/many_models.py (run with the peers' virtualenv).

Same loader and handler as serval's (benchmarks/_mm_common.py), Ray Serve's
``@serve.multiplexed`` with the same per-replica capacity, 2 replicas. Prints READY
and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--capacity", type=int, required=True)
    parser.add_argument("--latency", type=float, required=True)
    parser.add_argument("--loads-file", required=True)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    from benchmarks._mm_common import load_tenant, score, warm_up

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    registry, capacity, latency, loads = args.registry, args.capacity, args.latency, args.loads_file

    @serve.deployment(num_replicas=2, max_ongoing_requests=32)
    class Scorer:
        def __init__(self) -> None:
            warm_up()

        @serve.multiplexed(max_num_models_per_replica=capacity)  # type: ignore[untyped-decorator]
        async def get_model(self, model_id: str) -> Any:
            return await load_tenant(registry, model_id, latency, loads)

        async def __call__(self, request: Any) -> list[int]:
            return score(await self.get_model(serve.get_multiplexed_model_id()))

    serve.run(Scorer.bind(), route_prefix="/")  # type: ignore[attr-defined]
    print("READY", flush=True)
    sys.stdin.read()
    # ray.shutdown() stops the local cluster this process started, Serve with it;
    # serve.shutdown() first can wait 30 s on the controller and measures nothing.
    ray.shutdown()


if __name__ == "__main__":
    main()
