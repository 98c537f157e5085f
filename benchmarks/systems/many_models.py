"""One system on the many-models Zipf trace (benchmarks/many_models.py), as a child.

    python -m benchmarks.systems.many_models {serval,serval-tuned,ray} --duration S

Runs ``many_models.measure`` for that one system (Ray Serve starts its own peer
process there): wrk plays the trace for ``--duration`` seconds; reports req/s,
latencies, errors, the number of model loads, Belady's loads over the played requests
and the ideal bound on req/s.
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system", choices=many_models.SYSTEMS)
    p.add_argument("--duration", type=float, default=many_models.Settings.duration_s)
    p.add_argument("--tenants", type=int, default=many_models.Settings.tenants)
    p.add_argument("--connections", type=int, default=many_models.Settings.concurrency)
    args = p.parse_args(argv)
    s = dataclasses.replace(
        many_models.Settings(),
        duration_s=args.duration,
        tenants=args.tenants,
        concurrency=args.connections,
    )
    played = many_models.measure(s, [args.system])[args.system]
    row = played.result
    _child.emit(
        "result",
        requests=row.requests,
        errors=row.errors,
        rps=row.rps,
        p50_ms=row.p50_ms,
        p99_ms=row.p99_ms,
        concurrency=row.concurrency,
        loads=played.loads,
        belady=played.belady,
        oracle=played.oracle,
        ideal_rps=played.ideal_rps,
    )


if __name__ == "__main__":
    main()
