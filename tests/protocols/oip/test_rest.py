"""OIP v2 REST with the stock ``tritonclient.http``, unchanged, against real processes:
the many-models app over generated scikit-learn, ONNX and TorchScript models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from serval.apps._tenants import read_tenant, sample_rows
from tests.protocols.oip.conftest import TORCH_META, Served, assert_one_info_line_each
from tests.utils import wait_for

ROWS = np.asarray(sample_rows(3), dtype=np.float64)


def _tenant(registry: str, name: str, version: str = "1") -> Any:
    return read_tenant(registry, name, version)


def _input(name: str, array: np.ndarray, datatype: str, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=served.http, network_timeout=120.0)
    yield client
    client.close()


def test_live_ready_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "serval"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_ready_and_metadata_from_the_model(
    client: httpclient.InferenceServerClient,
) -> None:
    assert client.is_model_ready("tenant2")
    assert client.is_model_ready("iris", "2")
    assert client.is_model_ready("iris", "production")
    assert not client.is_model_ready("nosuchmodel")
    assert not client.is_model_ready("iris", "9")
    meta = client.get_model_metadata("tenant2")
    assert meta["name"] == "tenant2" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["outputs"][1]["shape"] == [-1, 3]
    onnx = client.get_model_metadata("linear")
    assert onnx["platform"] == "onnxruntime_onnx"
    assert onnx["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert onnx["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    torch_meta = client.get_model_metadata("torchy")  # from the oip.json beside it
    assert torch_meta["inputs"] == TORCH_META["inputs"]
    assert torch_meta["outputs"] == TORCH_META["outputs"]
    iris = client.get_model_metadata("iris", "1")
    assert iris["versions"] == ["1", "2"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_sklearn_matches_the_model(
    client: httpclient.InferenceServerClient, served: Served, binary: bool
) -> None:
    model = _tenant(served.registry, "tenant3")
    result = client.infer(
        "tenant3",
        [_input("input-0", ROWS, "FP64", binary)],
        outputs=[
            httpclient.InferRequestedOutput("predict", binary_data=binary),
            httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
        ],
        request_id="r-1",
    )
    response = result.get_response()
    assert response["model_name"] == "tenant3" and response["model_version"] == "1"
    assert response["id"] == "r-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(ROWS))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(ROWS))


def test_infer_all_outputs_when_none_requested(client: httpclient.InferenceServerClient) -> None:
    result = client.infer("tenant4", [_input("input-0", ROWS, "FP64", True)])
    assert {o["name"] for o in result.get_response()["outputs"]} == {"predict", "predict_proba"}


def test_versions_and_aliases(client: httpclient.InferenceServerClient, served: Served) -> None:
    for version, on_disk in (("1", "1"), ("2", "2"), ("production", "1"), ("", "2")):
        result = client.infer(
            "iris",
            [_input("input-0", ROWS, "FP64", True)],
            model_version=version,
            outputs=[httpclient.InferRequestedOutput("predict_proba")],
        )
        assert result.get_response()["model_version"] == on_disk
        expected = _tenant(served.registry, "iris", on_disk).predict_proba(ROWS)
        np.testing.assert_allclose(result.as_numpy("predict_proba"), expected)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_onnx_and_torchscript(client: httpclient.InferenceServerClient, binary: bool) -> None:
    import onnxruntime
    import torch

    from serval.models.loaders import load_torchscript
    from serval.models.registry.base import Artifact, ModelRef
    from tests.models._data import onnx_bytes, torchscript_bytes

    x = ROWS.astype(np.float32)
    result = client.infer("linear", [_input("x", x, "FP32", binary)])
    session = onnxruntime.InferenceSession(onnx_bytes())
    np.testing.assert_allclose(result.as_numpy("y"), session.run(None, {"x": x})[0], rtol=1e-6)

    result = client.infer("torchy", [_input("x", x, "FP32", binary)])
    module = load_torchscript(Artifact(ModelRef("t", "1"), "model.pt", torchscript_bytes()))
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(result.as_numpy("scores"), expected, rtol=1e-5)


def test_repository_index_load_unload(client: httpclient.InferenceServerClient) -> None:
    names = {m["name"] for m in client.get_model_repository_index()}
    assert {"tenant1", "tenant6", "iris", "linear", "torchy", "broken"} <= names

    def state(name: str) -> str:
        return str({m["name"]: m for m in client.get_model_repository_index()}[name]["state"])

    assert state("tenant5") == "UNAVAILABLE"
    client.load_model("tenant5")
    # the index shows what replicas report to the controller: eventually, not at once
    wait_for(lambda: state("tenant5") == "READY", timeout_s=60, what="tenant5 READY")
    client.unload_model("tenant5")
    wait_for(lambda: state("tenant5") == "UNAVAILABLE", timeout_s=60, what="tenant5 unloaded")


def test_repository_load_and_unload_of_an_unknown_model(
    client: httpclient.InferenceServerClient,
) -> None:
    err = _error(lambda: client.unload_model("nosuchrepomodel"))
    assert err.status() == "404" and "nosuchrepomodel" in err.message()
    err = _error(lambda: client.load_model("nosuchrepomodel"))
    assert err.status() == "404" and "nosuchrepomodel" in err.message()


def _error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_bad_input(client: httpclient.InferenceServerClient) -> None:
    rows = [_input("input-0", ROWS, "FP64", True)]
    err = _error(lambda: client.infer("nosuchmodel", rows))
    assert err.status() == "404" and "nosuchmodel" in err.message()
    err = _error(lambda: client.infer("iris", rows, model_version="9"))
    assert err.status() == "404" and "'9'" in err.message()
    err = _error(lambda: client.get_model_metadata("nosuchmodel"))
    assert err.status() == "404" and "nosuchmodel" in err.message()
    # shape
    wide = [_input("input-0", np.ones((2, 5)), "FP64", True)]
    err = _error(lambda: client.infer("tenant2", wide))
    assert err.status() == "400" and "'input-0'" in err.message() and "[-1, 4]" in err.message()
    # datatype
    ints = [_input("input-0", np.ones((2, 4), dtype=np.int64), "INT64", False)]
    err = _error(lambda: client.infer("tenant2", ints))
    assert err.status() == "400" and "expected datatype FP64" in err.message()
    # unknown input
    err = _error(lambda: client.infer("tenant2", [_input("z", ROWS, "FP64", True)]))
    assert err.status() == "400" and "'z'" in err.message()
    # unknown output
    err = _error(
        lambda: client.infer("tenant2", rows, outputs=[httpclient.InferRequestedOutput("logits")])
    )
    assert err.status() == "400" and "'logits'" in err.message()
    # the model's own code raises: 500 naming the error, the traceback stays in the logs
    err = _error(lambda: client.infer("exploding", rows))
    assert err.status() == "500" and "ZeroDivisionError: the model's own bug" in err.message()
    assert "Traceback" not in err.message()
    # a model that fails to load: 500 naming it and the cause, every time (not cached)
    for _ in range(2):
        err = _error(lambda: client.infer("broken", rows))
        assert err.status() == "500" and "broken" in err.message()
        assert "does not load" in err.message()


def test_bad_bodies(served: Served) -> None:
    base = f"http://{served.http}/v2/models/tenant2/infer"
    head = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64",'
    # binary byte length that does not match the shape
    body = head + b'"parameters":{"binary_data_size":24}}]}'
    r = httpx.post(
        base,
        content=body + b"\0" * 24,
        headers={"Inference-Header-Content-Length": str(len(body))},
        timeout=60,
    )
    assert r.status_code == 400 and "'input-0'" in r.text and "32 bytes" in r.text
    # data count that does not match the shape
    r = httpx.post(base, content=head + b'"data":[1,2,3]}]}', timeout=60)
    assert r.status_code == 400 and "needs 4 elements" in r.text
    r = httpx.post(base, content=b"{not json", timeout=60)
    assert r.status_code == 400 and "malformed JSON" in r.text
    # a field of the wrong type: 400 naming it ('parameters' of an input, of an output,
    # of the request; the id)
    ok_input = head + b'"data":[1,2,3,4]'
    r = httpx.post(base, content=ok_input + b',"parameters":"p"}]}', timeout=60)
    assert r.status_code == 400 and "`$.inputs[0].parameters`" in r.text
    r = httpx.post(
        base,
        content=ok_input + b'}],"outputs":[{"name":"predict","parameters":[1]}]}',
        timeout=60,
    )
    assert r.status_code == 400 and "`$.outputs[0].parameters`" in r.text
    r = httpx.post(base, content=ok_input + b'}],"parameters":[]}', timeout=60)
    assert r.status_code == 400 and "`$.parameters`" in r.text
    r = httpx.post(base, content=ok_input + b'}],"id":7}', timeout=60)
    assert r.status_code == 400 and "`$.id`" in r.text
    # the same input twice
    tensor = b'{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}'
    r = httpx.post(base, content=b'{"inputs":[' + tensor + b"," + tensor + b"]}", timeout=60)
    assert r.status_code == 400 and "input 'input-0' is given more than once" in r.text
    # a value of the wrong type is named
    r = httpx.post(base, content=head + b'"data":[1,2,"x3",4]}]}', timeout=60)
    assert r.status_code == 400 and "does not hold FP64 values (got 'x3')" in r.text
    # over the size limit
    r = httpx.post(base, content=b"x" * 1_200_000, timeout=60)
    assert r.status_code == 413
    r = httpx.get(f"http://{served.http}/v2/nothing/here", timeout=60)
    assert r.status_code == 404 and "/v2/nothing/here" in r.text


def test_client_errors_are_one_log_line(
    client: httpclient.InferenceServerClient, served: Served
) -> None:
    """Unknown model (infer, unload), a tensor the model does not take, a malformed
    body: the client gets 404/400, the logs get one short INFO line each (no traceback)."""
    rows = [_input("input-0", ROWS, "FP64", True)]
    assert _error(lambda: client.infer("logcheck-model", rows)).status() == "404"
    assert _error(lambda: client.unload_model("logcheck-unload")).status() == "404"
    odd = [_input("logcheck-input", ROWS, "FP64", True)]
    assert _error(lambda: client.infer("tenant2", odd)).status() == "400"
    body = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"logcheck-type",'
    body += b'"data":[1,2,3,4]}]}'
    r = httpx.post(f"http://{served.http}/v2/models/tenant2/infer", content=body, timeout=60)
    assert r.status_code == 400
    r = httpx.post(f"http://{served.http}/v2/models/tenant2/infer", content=b"{", timeout=60)
    assert r.status_code == 400
    tokens = {
        "logcheck-model": "404 ModelNotFoundError",
        "logcheck-unload": "404 ModelNotFoundError",
        "logcheck-input": "400 InvalidTensorError",
        "logcheck-type": "400 InvalidTensorError",
        "malformed JSON in the infer request": "400 BadRequestError",
    }
    assert_one_info_line_each(served, tokens)


def test_concurrent_calls_are_batched_and_each_gets_its_rows(served: Served) -> None:
    """Calls for one model that reach its replica together run as one model call
    (serval.protocols.oip.batching): each answer is still that request's own rows."""
    import asyncio

    from tests.observability._scrape import scrape

    model = _tenant(served.registry, "tenant5")
    rng = np.random.default_rng(5)
    url = f"http://{served.http}/v2/models/tenant5/infer"

    def body(x: np.ndarray) -> dict[str, Any]:
        tensor = {"name": "input-0", "shape": list(x.shape), "datatype": "FP64"}
        return {
            "inputs": [{**tensor, "data": x.ravel().tolist()}],
            "outputs": [{"name": "predict_proba"}],
        }

    async def burst(inputs: list[np.ndarray]) -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=60) as c:
            return await asyncio.gather(*(c.post(url, json=body(x)) for x in inputs))

    for _ in range(20):
        inputs = [rng.normal(size=(int(rng.integers(1, 5)), 4)) for _ in range(64)]
        for x, r in zip(inputs, asyncio.run(burst(inputs)), strict=True):
            assert r.status_code == 200, r.text
            (out,) = r.json()["outputs"]
            assert out["shape"] == [len(x), 3]
            got = np.asarray(out["data"]).reshape(out["shape"])
            np.testing.assert_allclose(got, model.predict_proba(x))
        scraped = scrape(f"http://{served.http}")
        calls = scraped.value("serval_batch_size_count", function="oip_infer")
        requests = scraped.value("serval_batch_size_sum", function="oip_infer")
        if requests > calls > 0:
            break
    else:
        raise AssertionError(f"no model call served two requests ({calls:g} calls)")
