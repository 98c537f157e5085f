"""One system on the many-models Zipf trace (benchmarks/many_models.py), as a child.

    python -m benchmarks.systems.many_models {serval,ray} --requests N

Runs ``many_models.measure`` for that one system (Ray Serve starts its own peer
process there) and reports req/s, latencies, errors and the number of model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import argparse
import dataclasses

from benchmarks import many_models
from benchmarks.systems import _child


def settings(requests: int) -> many_models.Settings:
    return dataclasses.replace(many_models.Settings(), requests=requests)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system", choices=("serval", "ray"))
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--tenants", type=int, default=many_models.Settings.tenants)
    args = p.parse_args(argv)
    s = dataclasses.replace(settings(args.requests), tenants=args.tenants)
    (row,), loads, _ = many_models.measure(s, [args.system])
    _child.emit(
        "result",
        requests=row.requests,
        errors=row.errors,
        rps=row.rps,
        p50_ms=row.p50_ms,
        p99_ms=row.p99_ms,
        concurrency=row.concurrency,
        loads=loads[args.system],
    )


if __name__ == "__main__":
    main()
