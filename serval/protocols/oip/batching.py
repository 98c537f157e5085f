"""Opportunistic batching: the OIP infer calls for one model that are ready in the same
event-loop pass run as one call of the model.

No call waits for company. The first call of a pass opens a batch and schedules it for
the loop's next pass (``call_soon``); every call for the same model, asking the same
outputs, with inputs of the same datatypes and trailing dimensions, that arrives before
then joins it. The inputs are stacked along the first dimension, the model runs once
and each call gets its own rows back. One request at a time costs one loop pass more
(microseconds); under load the model's fixed cost per call — scikit-learn checks its
input for ~100 µs whatever its size, a framework call has its own — is paid once per
batch instead of once per request. Triton's dynamic batcher with no queue delay does
the same.

A model is batched when its metadata gives every input and every requested output a
variable first dimension (-1): scikit-learn models, ONNX graphs with a symbolic batch
dimension, TorchScript modules or ``oip.json`` files that declare one. A model whose rows
depend on each other opts out with ``"batching": false`` in its ``oip.json``;
``max_rows`` bounds a batch (0: no batching). The batches' sizes (requests per model
call) are the ``serval_batch_size{function="oip_infer"}`` histogram.

When the batched call fails (one request's bad value spoils the batch: scikit-learn
refuses a NaN for all of it) or the model answers with other than one row per input
row, every call of the batch runs alone: each gets its own answer or its own error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from serval.exceptions import ConfigError
from serval.observability.process import BATCH_SIZES
from serval.protocols.oip.metadata import ModelMetadata, TensorSpec
from serval.protocols.oip.runner import check_inputs, compute, select_outputs
from serval.protocols.oip.tensors import Tensor

__all__ = ["DEFAULT_MAX_ROWS", "InferBatcher"]

DEFAULT_MAX_ROWS = 256  # rows in one batch; a request of this many rows runs alone
METRIC_FUNCTION = ("oip_infer",)  # the serval_batch_size series of these batches


class InferBatcher:
    """One replica's batches, by model (see the module docs)."""

    __slots__ = ("_open", "batched_calls", "batches", "max_rows")

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 0:
            raise ConfigError(f"oip_max_batch_rows must be an int >= 0, got {max_rows!r}")
        self.max_rows = max_rows
        self._open: dict[tuple[Any, ...], _Batch] = {}
        self.batches = 0  # model calls that served more than one request
        self.batched_calls = 0  # requests those calls served

    async def infer(
        self, model: Any, meta: ModelMetadata, inputs: list[Tensor], requested: list[str] | None
    ) -> list[Tensor]:
        """The requested outputs of ``model`` for ``inputs``, as :func:`~serval.protocols.
        oip.runner.run` gives them (the same checks, the same errors)."""
        ordered = check_inputs(meta, inputs)
        wanted = select_outputs(meta, requested)
        rows = _rows(meta, ordered, wanted)
        if rows is None or rows >= self.max_rows:
            return compute(model, meta, ordered, wanted)
        key = (
            id(model),
            tuple(s.name for s in wanted),
            tuple((t.datatype, *t.shape[1:]) for t in ordered),
        )
        batch = self._open.get(key)
        if batch is None or batch.rows + rows > self.max_rows:
            batch = self._open[key] = _Batch(model, meta, wanted)
            asyncio.get_running_loop().call_soon(self._run, key, batch)
        return await batch.add(ordered, rows)

    def _run(self, key: tuple[Any, ...], batch: _Batch) -> None:
        if self._open.get(key) is batch:
            del self._open[key]
        sizes = batch.run()
        for size in sizes:
            BATCH_SIZES.observe(METRIC_FUNCTION, size)
            if size > 1:
                self.batches += 1
                self.batched_calls += size


class _Call:
    __slots__ = ("future", "inputs", "rows")

    def __init__(self, inputs: list[Tensor], rows: int, future: asyncio.Future[list[Tensor]]):
        self.inputs = inputs
        self.rows = rows
        self.future = future


class _NotRowWise(Exception):
    """The model's answer does not have one row per input row."""


class _Batch:
    __slots__ = ("calls", "meta", "model", "rows", "wanted")

    def __init__(self, model: Any, meta: ModelMetadata, wanted: list[TensorSpec]) -> None:
        self.model = model
        self.meta = meta
        self.wanted = wanted
        self.calls: list[_Call] = []
        self.rows = 0

    def add(self, inputs: list[Tensor], rows: int) -> asyncio.Future[list[Tensor]]:
        future: asyncio.Future[list[Tensor]] = asyncio.get_running_loop().create_future()
        self.calls.append(_Call(inputs, rows, future))
        self.rows += rows
        return future

    def run(self) -> list[int]:
        """Answer every call still waiting; returns the requests each model call served."""
        calls = [c for c in self.calls if not c.future.done()]  # a cancelled caller left
        if len(calls) > 1:
            try:
                answers = self._together(calls)
            except Exception:  # one call spoils the batch: each runs alone (below)
                pass
            else:
                for call, answer in zip(calls, answers, strict=True):
                    call.future.set_result(answer)
                return [len(calls)]
        for call in calls:
            try:
                call.future.set_result(compute(self.model, self.meta, call.inputs, self.wanted))
            except Exception as exc:
                call.future.set_exception(exc)
        return [1] * len(calls)

    def _together(self, calls: list[_Call]) -> list[list[Tensor]]:
        total = sum(c.rows for c in calls)
        stacked = [
            Tensor(
                first.name,
                first.datatype,
                [total, *first.shape[1:]],
                np.concatenate([c.inputs[i].data for c in calls]),
            )
            for i, first in enumerate(calls[0].inputs)
        ]
        outputs = compute(self.model, self.meta, stacked, self.wanted)
        if any(t.shape[:1] != [total] for t in outputs):
            raise _NotRowWise
        answers = []
        start = 0
        for call in calls:
            end = start + call.rows
            answers.append(
                [
                    Tensor(t.name, t.datatype, [call.rows, *t.shape[1:]], t.data[start:end])
                    for t in outputs
                ]
            )
            start = end
        return answers


def _rows(meta: ModelMetadata, ordered: list[Tensor], wanted: list[TensorSpec]) -> int | None:
    """The call's rows when it may join a batch, else None."""
    if not meta.batching or not ordered:
        return None
    for spec in (*meta.inputs, *wanted):
        if not spec.shape or spec.shape[0] != -1:
            return None
    rows = ordered[0].shape[0]
    if rows < 1 or any(t.shape[0] != rows for t in ordered):
        return None
    return rows
