"""``serval.metrics``: Ray Serve's constructors and methods, and clear errors for bad
names, tag keys and values (outside a replica: no serve tags added)."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest
from prometheus_client.exposition import generate_latest

from serval import context, metrics
from serval.observability.process import process_metrics
from tests.observability._scrape import parse


def _exported() -> str:
    return generate_latest(process_metrics().registry).decode()


@pytest.mark.parametrize("name", ["1st", "has space", "dash-ed", "é", ""])
def test_an_invalid_metric_name_is_a_value_error_naming_it(name: str) -> None:
    for make in (
        lambda: metrics.Counter(name),
        lambda: metrics.Gauge(name),
        lambda: metrics.Histogram(name, boundaries=[1.0]),
    ):
        with pytest.raises(ValueError, match="name") as info:
            make()
        assert repr(name) in str(info.value) or not name


@pytest.mark.parametrize("key", ["bad-key", "9lives", "__reserved", "with space"])
def test_an_invalid_tag_key_is_a_value_error_naming_it(key: str) -> None:
    with pytest.raises(ValueError, match="invalid tag key") as info:
        metrics.Counter("ok_name_tags", tag_keys=("fine", key))
    assert repr(key) in str(info.value)


def test_other_bad_arguments() -> None:
    with pytest.raises(TypeError, match="tuple"):
        metrics.Counter("list_tags", tag_keys=["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeat"):
        metrics.Counter("dup_tags", tag_keys=("a", "a"))
    with pytest.raises(ValueError, match="serval_"):
        metrics.Counter("serval_mine")
    with pytest.raises(ValueError, match="boundaries"):
        metrics.Histogram("no_bounds")
    with pytest.raises(ValueError, match="index 1"):
        metrics.Histogram("neg_bounds", boundaries=[1.0, -2.0])
    with pytest.raises(ValueError, match="increase"):
        metrics.Histogram("unsorted_bounds", boundaries=[2.0, 1.0])
    counter = metrics.Counter("bad_values", tag_keys=("a",))
    with pytest.raises(ValueError, match=">0"):
        counter.inc(0, tags={"a": "x"})
    with pytest.raises(TypeError, match="int or float"):
        counter.inc("1", tags={"a": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Missing value for tag key"):
        counter.inc()
    with pytest.raises(ValueError, match="Unrecognized tag key 'b'"):
        counter.inc(tags={"a": "x", "b": "y"})
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        counter.set_default_tags({"b": "y"})
    with pytest.raises(TypeError, match="str"):
        counter.set_default_tags({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="already exists"):
        metrics.Gauge("bad_values")


def test_records_reach_the_process_registry() -> None:
    counter = metrics.Counter("unit_requests", "Requests.", tag_keys=("model",))
    assert counter.set_default_tags({"model": "base"}) is counter
    counter.inc()
    counter.inc(2.5, tags={"model": "other"})
    gauge = metrics.Gauge("unit_queue")
    gauge.set(3)
    gauge.set(None)  # no-op, as in Ray
    hist = metrics.Histogram("unit_latency", boundaries=[0.1, 1.0], tag_keys=("model",))
    hist.observe(0.5, tags={"model": "m"})
    assert hist.info["boundaries"] == [0.1, 1.0]
    assert counter.info == {
        "name": "unit_requests",
        "description": "Requests.",
        "tag_keys": ("model",),
        "default_tags": {"model": "base"},
    }
    m = parse(_exported())
    assert m.value("unit_requests_total", model="base") == 1
    assert m.value("unit_requests_total", model="other") == 2.5
    assert m.value("unit_queue") == 3
    assert m.value("unit_latency_bucket", model="m", le="1.0") == 1
    # made again with the same kind and tags: the same series
    metrics.Counter("unit_requests", tag_keys=("model",)).inc(tags={"model": "base"})
    assert parse(_exported()).value("unit_requests_total", model="base") == 2


def test_a_declared_route_tag_is_filled_from_the_request() -> None:
    counter = metrics.Counter("unit_routed", tag_keys=("route",))
    token = context._set_request_context(context.RequestContext(route="/api"))
    try:
        counter.inc()
        counter.inc(tags={"route": "/explicit"})
    finally:
        context._request_context.reset(token)
    m = parse(_exported())
    assert m.value("unit_routed_total", route="/api") == 1
    assert m.value("unit_routed_total", route="/explicit") == 1


def test_pickled_metrics_rebuild_where_they_land() -> None:
    hist = metrics.Histogram("unit_pickled", boundaries=[1.0], tag_keys=("a",))
    hist.set_default_tags({"a": "x"})
    for dumps in (pickle.dumps, cloudpickle.dumps):
        again = pickle.loads(dumps(hist))
        assert again.info == hist.info
        again.observe(0.5)
    assert parse(_exported()).value("unit_pickled_count", a="x") == 2
