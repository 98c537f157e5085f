"""Custom metrics from deployment code: Ray Serve's ``ray.serve.metrics`` API.

``from ray.serve import metrics`` code runs with the import changed to
``from serval import metrics``. Inside a replica every metric gets the tags
``deployment``, ``replica`` and ``application`` filled in; a ``route`` tag, when
declared in ``tag_keys``, is filled from the request being handled. The values are
exported with serval's own metrics at the proxy's ``GET /-/metrics``::

    from serval import metrics

    @serval.deployment
    class Model:
        def __init__(self):
            self.requests = metrics.Counter(
                "model_requests", description="Requests by tenant.", tag_keys=("tenant",)
            )
            self.latency = metrics.Histogram(
                "model_latency_s", boundaries=[0.01, 0.1, 1.0], tag_keys=("tenant",)
            )

        async def __call__(self, request):
            self.requests.inc(tags={"tenant": request.query_params["tenant"]})

A counter ``model_requests`` is exported as ``model_requests_total`` (Prometheus'
convention, as Ray does). Differences from Ray: an invalid metric name or tag key is a
``ValueError`` at construction (Ray warns and drops the metric), and names starting
with ``serval_`` are kept for serval's own metrics.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any, TypeVar

import prometheus_client

from serval import context
from serval.observability.process import process_metrics

__all__ = ["Counter", "Gauge", "Histogram"]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_TAG = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SERVE_TAGS = ("deployment", "replica", "application")
_ROUTE = "route"
M = TypeVar("M", bound="_Metric")
_lock = threading.Lock()
_registered: dict[str, tuple[str, tuple[str, ...], tuple[float, ...], Any]] = {}


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a metric name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("Empty name is not allowed: give the metric a name")
    if not _NAME.match(name):
        raise ValueError(
            f"invalid metric name {name!r}: use letters, digits, '_' and ':', "
            "not starting with a digit"
        )
    if name.startswith("serval_"):
        raise ValueError(
            f"invalid metric name {name!r}: names starting with 'serval_' are serval's own"
        )
    return name


def _check_tag_keys(name: str, tag_keys: object, in_replica: bool) -> tuple[str, ...]:
    if tag_keys is None:
        return ()
    if not isinstance(tag_keys, tuple):
        raise TypeError(
            f"tag_keys of metric {name!r} should be a tuple, got {type(tag_keys).__name__}"
        )
    for key in tag_keys:
        if not isinstance(key, str):
            raise TypeError(f"Tag keys must be str, got {type(key).__name__} in metric {name!r}")
        if not _TAG.match(key) or key.startswith("__"):
            raise ValueError(
                f"invalid tag key {key!r} of metric {name!r}: use letters, digits and '_', "
                "not starting with a digit or '__'"
            )
        if in_replica and key in _SERVE_TAGS:
            raise ValueError(
                f"tag key {key!r} of metric {name!r} is reserved: serval fills in "
                f"{', '.join(_SERVE_TAGS)} inside a replica"
            )
    if len(set(tag_keys)) != len(tag_keys):
        raise ValueError(f"tag_keys of metric {name!r} repeat a key: {tag_keys}")
    return tag_keys


def _replica() -> context.ReplicaContext | None:
    try:
        return context.get_replica_context()
    except RuntimeError:
        return None


def _register(
    kind: str, name: str, description: str, keys: tuple[str, ...], bounds: tuple[float, ...]
) -> Any:
    """The prometheus-client metric behind ``name`` in this process's registry (the
    same one when a metric of the same kind and tags is made again)."""
    with _lock:
        known = _registered.get(name)
        if known is not None:
            if known[:3] != (kind, keys, bounds):
                raise ValueError(
                    f"metric {name!r} already exists in this process as a {known[0]} with "
                    f"tag keys {known[1]}; a second one must have the same kind and tags"
                )
            return known[3]
        registry = process_metrics().registry
        doc = description or name
        metric: Any
        if kind == "counter":
            metric = prometheus_client.Counter(name, doc, keys, registry=registry)
        elif kind == "gauge":
            metric = prometheus_client.Gauge(name, doc, keys, registry=registry)
        else:
            metric = prometheus_client.Histogram(name, doc, keys, registry=registry, buckets=bounds)
        _registered[name] = (kind, keys, bounds, metric)
        return metric


def _rebuild(cls: type[_Metric], args: tuple[Any, ...], default_tags: dict[str, str]) -> Any:
    metric = cls(*args)
    return metric.set_default_tags(default_tags) if default_tags else metric


class _Metric:
    _kind = ""

    def __init__(
        self,
        name: str,
        description: str = "",
        tag_keys: tuple[str, ...] | None = None,
        *,
        _boundaries: tuple[float, ...] = (),
    ) -> None:
        self._name = _check_name(name)
        self._description = description
        replica = _replica()
        self._user_keys = _check_tag_keys(name, tag_keys, replica is not None)
        self._serve_tags: dict[str, str] = {}
        if replica is not None:
            self._serve_tags = {
                "deployment": replica.deployment,
                "replica": replica.replica_tag,
                "application": replica.app_name,
            }
        self._tag_keys = (*self._serve_tags, *self._user_keys)
        self._user_defaults: dict[str, str] = {}
        self._default_tags: dict[str, str] = dict(self._serve_tags)
        self._metric = _register(self._kind, name, description, self._tag_keys, _boundaries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, tag_keys={self._tag_keys})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt where it lands (a replica), so it registers there with its serve tags.
        return (_rebuild, (type(self), self._args(), dict(self._user_defaults)))

    def _args(self) -> tuple[Any, ...]:
        return (self._name, self._description, self._user_keys or None)

    @property
    def info(self) -> dict[str, Any]:
        """The name, description, tag keys and default tags."""
        return {
            "name": self._name,
            "description": self._description,
            "tag_keys": self._tag_keys,
            "default_tags": dict(self._default_tags),
        }

    def set_default_tags(self: M, default_tags: dict[str, str]) -> M:
        """Tags used by every record call unless it gives its own; returns the metric.

        Example::

            counter = metrics.Counter("hits", tag_keys=("model",)).set_default_tags(
                {"model": "base"}
            )
        """
        for key, value in default_tags.items():
            if key in self._serve_tags:
                raise ValueError(
                    f"tag key {key!r} of metric {self._name!r} is reserved: serval sets it"
                )
            if key not in self._user_keys:
                raise ValueError(f"Unrecognized tag key {key!r} for metric {self._name!r}")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value).__name__}")
        self._user_defaults = dict(default_tags)
        self._default_tags = {**self._serve_tags, **default_tags}
        return self

    def _child(self, tags: dict[str, str] | None) -> Any:
        if not self._tag_keys:
            if tags:
                raise ValueError(f"metric {self._name!r} has no tag keys; got tags {sorted(tags)}")
            return self._metric
        final = self._default_tags
        if tags:
            for key, value in tags.items():
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key!r} for metric {self._name!r}")
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value).__name__}")
            final = {**final, **tags}
        if _ROUTE in self._user_keys and _ROUTE not in final:
            final = {**final, _ROUTE: context.get_request_context().route}
        try:
            return self._metric.labels(*[final[key] for key in self._tag_keys])
        except KeyError:
            missing = [key for key in self._tag_keys if key not in final]
            raise ValueError(
                f"Missing value for tag key(s) of metric {self._name!r}: {','.join(missing)}"
            ) from None


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value must be int or float, got {type(value).__name__}")
    return float(value)


class Counter(_Metric):
    """A value that only goes up (Prometheus counter; exported as ``<name>_total``).

    Example::

        self.errors = metrics.Counter("scorer_errors", tag_keys=("tenant",))
        self.errors.inc(tags={"tenant": tenant})
    """

    _kind = "counter"

    def __init__(
        self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(name, description, tag_keys)

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        """Add ``value`` (> 0)."""
        amount = _number(value)
        if amount <= 0:
            raise ValueError(f"value must be >0, got {value}")
        self._child(tags).inc(amount)


class Gauge(_Metric):
    """A value that goes up and down; the last one set is exported.

    Example::

        self.queue = metrics.Gauge("scorer_queue_length")
        self.queue.set(len(self.pending))
    """

    _kind = "gauge"

    def __init__(
        self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(name, description, tag_keys)

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        """Set the gauge (``None``: do nothing)."""
        if value is None:
            return
        self._child(tags).set(_number(value))


class Histogram(_Metric):
    """Observations counted in buckets with these upper ``boundaries``.

    Example::

        self.latency = metrics.Histogram("score_s", boundaries=[0.01, 0.1, 1.0])
        self.latency.observe(elapsed)
    """

    _kind = "histogram"

    def __init__(
        self,
        name: str,
        description: str = "",
        boundaries: Sequence[float] | None = None,
        tag_keys: tuple[str, ...] | None = None,
    ) -> None:
        _check_name(name)
        if boundaries is None or len(boundaries) == 0:
            raise ValueError(
                f"Histogram {name!r} needs boundaries, e.g. "
                f"Histogram({name!r}, boundaries=[0.1, 1.0])"
            )
        for i, bound in enumerate(boundaries):
            if isinstance(bound, bool) or not isinstance(bound, int | float) or bound <= 0:
                raise ValueError(
                    f"invalid boundaries of Histogram {name!r} at index {i}: {list(boundaries)}; "
                    "use positive numbers"
                )
        if list(boundaries) != sorted(set(boundaries)):
            raise ValueError(
                f"invalid boundaries of Histogram {name!r}: {list(boundaries)} must increase"
            )
        self.boundaries = list(boundaries)
        super().__init__(
            name, description, tag_keys, _boundaries=tuple(float(b) for b in boundaries)
        )

    def _args(self) -> tuple[Any, ...]:
        return (self._name, self._description, self.boundaries, self._user_keys or None)

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": self.boundaries}

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        """Count ``value`` in its bucket."""
        self._child(tags).observe(_number(value))
