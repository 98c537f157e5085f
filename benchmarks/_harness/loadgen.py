"""Drive an HTTP endpoint at fixed concurrency: ``wrk`` when installed, else ``pyload``.

Example::

    gen = LoadGenerator.pick("auto")
    m = gen.measure("http://127.0.0.1:8000/", connections=32, duration_s=5, warmup_s=1)
    print(gen.describe(), m.rps, m.p99_ms, m.errors.total)

``requests`` (a request count instead of a duration) needs the pyload generator.
The warm-up runs the same load first and is thrown away (with wrk, a separate run of
at least one second; with pyload, a phase before the measured one on the same
connections).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from benchmarks._harness import pyload, wrk
from benchmarks._harness.stats import Measurement

Kind = Literal["wrk", "python"]
KINDS: tuple[str, ...] = ("auto", "wrk", "python")


@dataclass(frozen=True)
class LoadGenerator:
    """Which generator to use and how wide: wrk threads, or pyload processes."""

    kind: Kind
    threads: int = 1
    processes: int = 1
    timeout_s: float = 10.0

    @classmethod
    def pick(cls, kind: str = "auto", *, threads: int = 1, processes: int = 0) -> LoadGenerator:
        """``auto``: wrk if installed, else pyload with one process per core."""
        if kind not in KINDS:
            raise ValueError(f"load generator {kind!r}: expected one of {KINDS}")
        if kind == "wrk" and not wrk.available():
            raise RuntimeError("wrk is not installed (apt-get install wrk), use --loadgen python")
        chosen: Kind = "wrk" if kind == "wrk" or (kind == "auto" and wrk.available()) else "python"
        return cls(chosen, threads=threads, processes=processes or (os.cpu_count() or 1))

    def describe(self) -> str:
        if self.kind == "wrk":
            return f"{wrk.version()} (-t{self.threads})"
        return f"serval pyload (asyncio, up to {self.processes} processes)"

    def measure(
        self,
        url: str,
        connections: int,
        duration_s: float,
        *,
        warmup_s: float = 1.0,
        requests: int | None = None,
        body: bytes | None = None,
    ) -> Measurement:
        """Warm up, then measure for ``duration_s``, or (pyload only) until ``requests``
        responses, of which there may be up to ``connections - 1`` more. GETs, or with
        ``body`` POSTs of that JSON body."""
        if connections < 1:
            raise ValueError(f"connections={connections}: need at least 1")
        if self.kind == "wrk":
            if requests is not None:
                raise ValueError("wrk runs for a duration only; count requests with pyload")
            if warmup_s > 0:
                wrk.run(
                    url,
                    connections,
                    warmup_s,
                    threads=self.threads,
                    timeout_s=self.timeout_s,
                    body=body,
                )
            return wrk.run(
                url,
                connections,
                duration_s,
                threads=self.threads,
                timeout_s=self.timeout_s,
                body=body,
            )
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return pyload.run(
            parts.hostname or "127.0.0.1",
            parts.port or 80,
            path,
            connections,
            duration_s,
            warmup_s=warmup_s,
            requests=requests,
            processes=self.processes,
            timeout_s=self.timeout_s,
            body=body,
        )
