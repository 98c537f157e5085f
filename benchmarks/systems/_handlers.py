"""The handler code every system runs: same bodies, so only the framework differs.

It imports no serving framework (each system's module wraps it in its own API).
"""

from __future__ import annotations

import json

from benchmarks._bare_app import hello

__all__ = ["BODY", "MAX_BATCH", "hello", "predict", "tokenize"]

# What the load generator POSTs to every HTTP endpoint (LitServe accepts only a JSON
# POST; the others get the same bytes and ignore them).
BODY = json.dumps({"text": "Hello world"}).encode()
MAX_BATCH = 32  # the batching scenario's max_batch_size, as in benchmarks/batching.py


def tokenize(text: str) -> list[str]:
    """The pipeline's first stage."""
    return text.lower().split()


def predict(tokens: list[str]) -> str:
    """The pipeline's second stage."""
    return f"{len(tokens)} tokens"
