"""The Open Inference Protocol v2 over REST: serval against MLServer, the peer that
speaks it, at 1 and 32 keep-alive connections.

One scikit-learn model (benchmarks/systems/_oip.py: a 4-feature logistic regression,
saved with joblib) served by both; the load generator POSTs the same OIP JSON infer
body (3 rows, ``predict`` requested) to ``/v2/models/logreg/infer``. serval runs on its
defaults: the many-models app as ``serval run serval.apps.many_models:app --registry
DIR`` serves it. Beside it, labelled ``serval /score`` (role: reference), the app's own
``POST /score`` on the same instance and model, measured in turn with the OIP calls:
what the protocol costs over serval's native API. serval is primed first (``PRIME_S``
at 32 connections, not measured): a model whose replica is full gets a second copy,
and that load is warm-up, not steady state. Peer: MLServer 1.7.1 with its
scikit-learn runtime, ``parallel_workers: 0`` (benchmarks/systems/mlserver_apps.py),
twice: as ``pip install mlserver mlserver-sklearn`` gives it (uvicorn's h11 parser:
``MLServer``) and with httptools, the parser ``uvicorn[standard]`` brings
(``MLServer+httptools``: 9-16% more req/s here on 2026-12-04), and a third time with
httptools and its adaptive batching on (``MLServer+httptools+batching``, a tuned
setting: up to 32 requests per model call after at most 1 ms; serval batches the calls
that reach a replica together by default, without waiting:
serval/protocols/oip/batching.py). Targets (issue 11, set against the first): serval's
OIP REST at least ``TARGETS`` times MLServer's req/s.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile

from benchmarks._bench.cells import Cell, Role
from benchmarks._bench.children import serving
from benchmarks.scenarios._context import MLSERVER, MODULES, SERVAL, Context, http_cell
from benchmarks.systems import _oip

NAME = "oip"
CONCURRENCIES = (1, 32)
TARGETS = {1: 1.3, 32: 4.0}  # serval's OIP REST req/s over MLServer's, by connections
PRIME_S = 3.0  # serval's first load at the most connections, before any point
SCORE = "serval /score"
MLSERVER_FAST = f"{MLSERVER}+httptools"
MLSERVER_BATCHING = f"{MLSERVER}+httptools+batching"
PARSERS = {  # system -> uvicorn's parser
    MLSERVER: "h11",
    MLSERVER_FAST: "httptools",
    MLSERVER_BATCHING: "httptools",
}


def point(conns: int) -> str:
    return f"OIP REST c{conns}"


def run(ctx: Context) -> list[Cell]:
    s = ctx.settings
    points = [point(c) for c in CONCURRENCIES]
    infer, score = _oip.infer_body(), _oip.score_body()

    def measure_serval(registry: str) -> list[Cell]:
        args = ["--registry", registry]
        cells = []
        with serving(
            MODULES[SERVAL], NAME, timeout_s=s.start_timeout_s, python=s.python, args=args
        ) as ready:
            # Priming, not measured: under the most connections the model's replica fills
            # up and a second copy loads (model-aware routing); a one-off load is warm-up.
            prime = max(1.0, min(PRIME_S, s.warmup_s + s.duration_s))
            ctx.gen.measure(ready["url"], max(CONCURRENCIES), prime, warmup_s=0, body=infer)
            for i, conns in enumerate(CONCURRENCIES):
                pair = [
                    (ready["url"], infer, SERVAL, Role.SERVAL),
                    (ready["score_url"], score, SCORE, Role.REFERENCE),
                ]
                for url, body, system, role in pair if i % 2 == 0 else pair[::-1]:
                    m = ctx.measure_http(url, conns, body)  # in turn: neither always first
                    cells.append(http_cell(m, point(conns), system, role, conns))
        return cells

    def measure_mlserver(model_path: str, system: str) -> list[Cell]:
        args = ["--model", model_path, "--mlserver", s.mlserver]
        args += ["--http-parser", PARSERS[system]]
        if system == MLSERVER_BATCHING:
            args.append("--batching")
        cells = []
        with serving(
            MODULES[MLSERVER], NAME, timeout_s=s.start_timeout_s, python=s.python, args=args
        ) as ready:
            for conns in CONCURRENCIES:
                m = ctx.measure_http(ready["url"], conns, infer)
                note = f"MLServer {ready['version']}, {ready['parser']}, parallel_workers 0"
                if system == MLSERVER_BATCHING:
                    note += "; tuned: adaptive batching (32 requests, 1 ms)"
                if system == MLSERVER:
                    note += f"; target: serval >= {TARGETS[conns]:g}x"
                cell = http_cell(m, point(conns), system, Role.PEER, conns)
                cells.append(dataclasses.replace(cell, note=note))
        return cells

    with tempfile.TemporaryDirectory(prefix="svoip") as registry:
        model_path = _oip.write_registry(registry)
        cells = ctx.attempt(points, SERVAL, Role.SERVAL, lambda: measure_serval(registry))
        if MLSERVER in s.peer_systems((MLSERVER,)):
            for system in PARSERS:
                measure = functools.partial(measure_mlserver, model_path, system)
                cells += ctx.attempt(points, system, Role.PEER, measure)
    return cells
