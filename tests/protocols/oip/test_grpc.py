"""OIP v2 gRPC with the stock ``tritonclient.grpc``, unchanged, against real processes
(the proxy's gRPC port, routed to the many-models app like REST)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from serval.apps._tenants import read_tenant, sample_rows
from tests.protocols.oip.conftest import Served, assert_one_info_line_each

ROWS = np.asarray(sample_rows(4), dtype=np.float64)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(url=served.grpc)
    yield client
    client.close()  # no gRPC threads left behind: later tests fork


def _input(name: str, array: np.ndarray, datatype: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_live_ready_metadata(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("tenant2")
    assert client.is_model_ready("iris", "production")
    meta = client.get_model_metadata("tenant2", as_json=True)
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]


def test_infer_matches_the_model(client: grpcclient.InferenceServerClient, served: Served) -> None:
    model = read_tenant(served.registry, "iris", 1)
    result = client.infer(
        "iris",
        [_input("input-0", ROWS, "FP64")],
        model_version="production",
        request_id="g-1",
    )
    response = result.get_response()
    assert response.model_version == "1" and response.id == "g-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(ROWS))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(ROWS))

    x = ROWS.astype(np.float32)
    result = client.infer("linear", [_input("x", x, "FP32")])
    W = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float32)
    np.testing.assert_allclose(result.as_numpy("y"), x @ W + [0.5, -0.5, 0.0], rtol=1e-6)


def test_bad_input_codes(client: grpcclient.InferenceServerClient) -> None:
    rows = [_input("input-0", ROWS, "FP64")]
    err = _error(lambda: client.infer("nosuchmodel", rows))
    assert err.status() == str(grpc.StatusCode.NOT_FOUND) and "nosuchmodel" in err.message()
    err = _error(lambda: client.is_model_ready("iris", "9"))
    assert err.status() == str(grpc.StatusCode.NOT_FOUND)
    wide = [_input("input-0", np.ones((2, 5)), "FP64")]
    err = _error(lambda: client.infer("tenant2", wide))
    assert err.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    assert "'input-0'" in err.message() and "[-1, 4]" in err.message()
    err = _error(
        lambda: client.infer("tenant2", rows, outputs=[grpcclient.InferRequestedOutput("nope")])
    )
    assert err.status() == str(grpc.StatusCode.INVALID_ARGUMENT) and "'nope'" in err.message()
    err = _error(lambda: client.infer("exploding", rows))
    assert err.status() == str(grpc.StatusCode.INTERNAL)
    assert "ZeroDivisionError: the model's own bug" in err.message()
    assert "Traceback" not in err.message()
    err = _error(lambda: client.infer("broken", rows))
    assert err.status() == str(grpc.StatusCode.UNAVAILABLE) and "broken" in err.message()
    big = [_input("input-0", np.ones((200_000, 4)), "FP64")]  # 6.4 MB > gRPC's 4 MB
    err = _error(lambda: client.infer("tenant2", big))
    assert err.status() == str(grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_client_errors_are_one_log_line(
    client: grpcclient.InferenceServerClient, served: Served
) -> None:
    """NOT_FOUND and INVALID_ARGUMENT: one short INFO line each in the logs."""
    rows = [_input("input-0", ROWS, "FP64")]
    err = _error(lambda: client.infer("grpc-logcheck-model", rows))
    assert err.status() == str(grpc.StatusCode.NOT_FOUND)
    err = _error(lambda: client.infer("tenant2", [_input("grpc-logcheck-input", ROWS, "FP64")]))
    assert err.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    tokens = {
        "grpc-logcheck-model": "404 ModelNotFoundError",
        "grpc-logcheck-input": "400 InvalidTensorError",
    }
    assert_one_info_line_each(served, tokens)


def test_infer_goes_from_the_proxy_to_the_model_replica(
    client: grpcclient.InferenceServerClient, served: Served
) -> None:
    """ModelInfer calls skip the ingress (the Dispatcher does no work for them), as
    REST infer calls do; a message that is not a ModelInferRequest is INVALID_ARGUMENT."""
    from tests.observability._scrape import scrape

    def dispatcher_calls() -> float:
        return scrape(f"http://{served.http}").value(
            "serval_replica_processing_latency_seconds_count", deployment="Dispatcher"
        )

    model = read_tenant(served.registry, "tenant3", 1)
    rows = [_input("input-0", ROWS, "FP64")]
    client.infer("tenant3", rows)
    before = dispatcher_calls()
    for _ in range(3):
        result = client.infer("tenant3", rows)
        np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(ROWS))
    assert _error(lambda: client.infer("tenant404", rows)).status() == str(
        grpc.StatusCode.NOT_FOUND
    )
    assert client.is_model_ready("tenant3")  # not an infer call: through the ingress
    assert dispatcher_calls() == before + 1

    with grpc.insecure_channel(served.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as info:
            infer(b"\xff\xff\xff", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ModelInfer request" in str(info.value.details())
