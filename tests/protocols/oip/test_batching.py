"""Unit tests of opportunistic OIP batching (serval.protocols.oip.batching): one event
loop, a real scikit-learn model behind a wrapper that counts its calls."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from serval.apps.many_models import ManyModelsConfig
from serval.exceptions import ConfigError
from serval.observability.process import BATCH_SIZES
from serval.protocols.oip.batching import METRIC_FUNCTION, InferBatcher
from serval.protocols.oip.errors import InvalidTensorError
from serval.protocols.oip.metadata import ModelMetadata, metadata_of, parse_metadata
from serval.protocols.oip.tensors import Tensor

RNG = np.random.default_rng(7)
X = RNG.normal(size=(200, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)


class Counting:
    """A fitted classifier that counts the calls and rows it was asked for."""

    def __init__(self) -> None:
        self.inner = LogisticRegression(max_iter=500).fit(X, Y)
        self.n_features_in_ = 4
        self.classes_ = self.inner.classes_
        self.calls: list[int] = []

    def predict(self, x: Any) -> Any:
        self.calls.append(len(x))
        return self.inner.predict(x)

    def predict_proba(self, x: Any) -> Any:
        self.calls.append(len(x))
        return self.inner.predict_proba(x)


class Pooled(Counting):
    """Answers one row for the whole input (its rows are not independent)."""

    def predict(self, x: Any) -> Any:
        self.calls.append(len(x))
        return self.inner.predict(np.asarray(x).mean(axis=0, keepdims=True))


def rows(n: int, start: int = 0) -> Tensor:
    data = X[start : start + n].copy()
    return Tensor("input-0", "FP64", [n, 4], data)


async def _gather(
    batcher: InferBatcher,
    model: Any,
    calls: list[tuple[Tensor, list[str] | None]],
    meta: ModelMetadata | None = None,
) -> list[Any]:
    meta = meta or metadata_of(model)
    return await asyncio.gather(
        *(batcher.infer(model, meta, [t], out) for t, out in calls), return_exceptions=True
    )


def test_calls_ready_together_run_as_one_model_call() -> None:
    model, batcher = Counting(), InferBatcher()
    calls = [(rows(3, 3 * i), ["predict"]) for i in range(8)]
    answers = asyncio.run(_gather(batcher, model, calls))
    assert model.calls == [24]  # one model call for 8 requests of 3 rows
    assert (batcher.batches, batcher.batched_calls) == (1, 8)
    for (tensor, _), answer in zip(calls, answers, strict=True):
        (out,) = answer
        assert out.name == "predict" and out.shape == [3]
        np.testing.assert_array_equal(out.data, model.inner.predict(tensor.data))


def test_probabilities_match_one_call_each() -> None:
    model, batcher = Counting(), InferBatcher()
    calls = [(rows(2 + i, 10 * i), ["predict_proba", "predict"]) for i in range(5)]
    answers = asyncio.run(_gather(batcher, model, calls))
    assert len(model.calls) == 2  # one call per output, not per request
    for (tensor, _), answer in zip(calls, answers, strict=True):
        proba, label = answer
        assert proba.shape == [tensor.shape[0], 3]
        np.testing.assert_allclose(proba.data, model.inner.predict_proba(tensor.data), rtol=1e-12)
        np.testing.assert_array_equal(label.data, model.inner.predict(tensor.data))


def test_a_bad_request_spoils_only_itself() -> None:
    model, batcher = Counting(), InferBatcher()
    bad = rows(3, 0)
    bad.data[1, 2] = np.nan  # scikit-learn refuses the whole input
    calls = [(rows(3, 30), ["predict"]), (bad, ["predict"]), (rows(2, 60), ["predict"])]
    good1, error, good2 = asyncio.run(_gather(batcher, model, calls))
    assert isinstance(error, InvalidTensorError) and "NaN" in str(error)
    np.testing.assert_array_equal(good1[0].data, model.inner.predict(X[30:33]))
    np.testing.assert_array_equal(good2[0].data, model.inner.predict(X[60:62]))
    assert model.calls == [8, 3, 3, 2]  # the batch, then each alone
    assert batcher.batches == 0


def test_requests_that_differ_are_not_stacked() -> None:
    model, batcher = Counting(), InferBatcher()
    calls = [(rows(3), ["predict"]), (rows(3), ["predict_proba"]), (rows(3), ["predict"])]
    asyncio.run(_gather(batcher, model, calls))
    assert sorted(model.calls) == [3, 6]  # the two predict calls together
    other = Counting()
    asyncio.run(_gather(batcher, other, [(rows(2), ["predict"])]))
    assert other.calls == [2]  # another model: its own call


def test_checks_still_answer_per_request() -> None:
    model, batcher = Counting(), InferBatcher()
    wrong = Tensor("input-0", "FP64", [2, 3], np.zeros((2, 3)))
    calls = [(rows(2), ["predict"]), (wrong, ["predict"]), (rows(2), ["nope"])]
    ok, shape, output = asyncio.run(_gather(batcher, model, calls))
    assert ok[0].shape == [2]
    assert isinstance(shape, InvalidTensorError) and "expected shape [-1, 4]" in str(shape)
    assert "unknown output 'nope'" in str(output)
    assert model.calls == [2]


def test_a_model_answering_other_than_row_wise_runs_alone() -> None:
    model, batcher = Pooled(), InferBatcher()
    calls = [(rows(3, 0), ["predict"]), (rows(3, 3), ["predict"])]
    first, second = asyncio.run(_gather(batcher, model, calls))
    assert model.calls == [6, 3, 3]
    assert first[0].shape == [1] and second[0].shape == [1]
    expected = model.inner.predict(X[3:6].mean(axis=0, keepdims=True))
    np.testing.assert_array_equal(second[0].data, expected)


def test_opting_out_and_bounds() -> None:
    model = Counting()
    meta = metadata_of(model)
    opted_out = parse_metadata(
        {
            "inputs": [t.to_json() for t in meta.inputs],
            "outputs": [t.to_json() for t in meta.outputs],
            "batching": False,
        }
    )
    batcher = InferBatcher()
    asyncio.run(_gather(batcher, model, [(rows(2), None)] * 3, opted_out))
    assert model.calls == [2, 2] * 3  # predict and predict_proba, each request alone

    model = Counting()
    asyncio.run(_gather(InferBatcher(0), model, [(rows(2), ["predict"])] * 3))
    assert model.calls == [2, 2, 2]  # max_rows 0: off

    model = Counting()
    asyncio.run(_gather(InferBatcher(8), model, [(rows(3), ["predict"])] * 5 + [(rows(9), None)]))
    assert model.calls == [9, 9, 6, 6, 3]  # 9 rows alone (2 outputs); batches of <= 8 rows

    with pytest.raises(ValueError, match="'batching' must be true or false"):
        parse_metadata({"inputs": [], "outputs": [], "batching": "no"})
    with pytest.raises(ConfigError, match="oip_max_batch_rows"):
        InferBatcher(-1)
    with pytest.raises(ValueError, match="oip_max_batch_rows"):
        ManyModelsConfig(registry="/tmp/r", oip_max_batch_rows=-1)


def test_a_cancelled_caller_does_not_stop_the_batch() -> None:
    model, batcher = Counting(), InferBatcher()

    async def main() -> tuple[Any, Any]:
        meta = metadata_of(model)
        first = asyncio.ensure_future(batcher.infer(model, meta, [rows(2, 0)], ["predict"]))
        second = asyncio.ensure_future(batcher.infer(model, meta, [rows(2, 2)], ["predict"]))
        await asyncio.sleep(0)  # both joined the batch
        first.cancel()
        return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(main())
    assert isinstance(first, asyncio.CancelledError)
    np.testing.assert_array_equal(second[0].data, model.inner.predict(X[2:4]))
    assert model.calls == [2]


def test_batch_sizes_are_exported() -> None:
    model, batcher = Counting(), InferBatcher()
    before = BATCH_SIZES.series.get(METRIC_FUNCTION)
    calls_before, sum_before = (sum(before[:-1]), before[-1]) if before else (0.0, 0.0)
    asyncio.run(_gather(batcher, model, [(rows(1), ["predict"])] * 4))
    row = BATCH_SIZES.series[METRIC_FUNCTION]  # bucket counts, then the sum
    assert sum(row[:-1]) == calls_before + 1  # one model call observed...
    assert row[-1] == sum_before + 4  # ... that served 4 requests
