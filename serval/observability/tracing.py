"""Tracing: OpenTelemetry spans across proxy → replica → handle calls (Ray Serve's
``tracing_config``).

::

    serve.start(tracing_config={"enabled": True, "sampling_ratio": 1.0})

Each serval process of the instance sets up a tracer at start (:func:`setup`) when the
instance was started with tracing on (the config travels in ``SERVAL_TRACING``). The
proxy opens a span per HTTP request, continuing the client's ``traceparent`` header when
it sends one, and forwards the context to the replica in that header; the replica opens
its span as a child; a handle call made inside carries the current context in its
``Call`` frame, so the called replica's span is a child too.

Where spans go: ``exporter_import_path`` names a function returning a list of span
processors (Ray Serve's contract: e.g. an OTLP exporter to a collector); without one,
each process writes its spans as JSON lines under ``<state dir>/spans/``. With tracing
off, the request path pays one ``is None`` check.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import Field

from serval._env import read_env
from serval.config import _Options

logger = logging.getLogger("serval.tracing")

ENV_VAR = "SERVAL_TRACING"
TRACEPARENT = b"traceparent"

_tracer: Any = None  # an opentelemetry Tracer once setup() enabled tracing here
_propagator: Any = None


class TracingConfig(_Options):
    """Ray Serve's ``tracing_config``: whether to trace, how much, and where to."""

    enabled: bool = False
    exporter_import_path: str | None = None
    sampling_ratio: float = Field(1.0, ge=0, le=1)


def enabled() -> bool:
    return _tracer is not None


def setup(component: str, config: TracingConfig | None = None) -> bool:
    """Start tracing in this process if the instance was started with it; True if on."""
    global _tracer, _propagator
    if config is None:
        raw = read_env().tracing
        if not raw:
            return False
        config = TracingConfig.model_validate_json(raw)
    if not config.enabled:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(
        resource=Resource.create({"service.name": "serval", "serval.component": component}),
        sampler=ParentBased(TraceIdRatioBased(config.sampling_ratio)),
    )
    for processor in _processors(config, component):
        provider.add_span_processor(processor)
    _tracer = provider.get_tracer("serval")
    _propagator = TraceContextTextMapPropagator()
    return True


def check_exporter(path: str) -> None:
    """A ConfigError naming ``exporter_import_path`` when it does not import as a
    callable (checked where the instance starts, before any process depends on it)."""
    from serval._import import import_attr
    from serval.exceptions import ConfigError

    try:
        factory = import_attr(path)
    except Exception as exc:
        raise ConfigError(
            f"tracing_config.exporter_import_path: cannot import {path!r}: {exc}"
        ) from None
    if not callable(factory):
        raise ConfigError(
            f"tracing_config.exporter_import_path: {path!r} is not a function returning "
            "span processors"
        )


def _processors(config: TracingConfig, component: str) -> Sequence[Any]:
    if config.exporter_import_path:
        from serval._import import import_attr

        processors = import_attr(config.exporter_import_path)()
        return list(processors)
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    env = read_env()
    folder = os.path.join(env.home, env.namespace, "spans")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{component}-{os.getpid()}.jsonl")
    return [SimpleSpanProcessor(json_lines_exporter(path))]


def json_lines_exporter(path: str) -> Any:
    """A span exporter that appends one JSON object per span to ``path`` (imported
    lazily: opentelemetry loads only where tracing is on)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            with open(path, "a") as f:
                for span in spans:
                    f.write(json.dumps(_span_dict(span)) + "\n")
            return SpanExportResult.SUCCESS

    return JsonLinesExporter()


def _span_dict(span: Any) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "component": span.resource.attributes.get("serval.component"),
    }


# -- context in and out of frames ----------------------------------------------------


def traceparent() -> str:
    """The current context as a W3C ``traceparent`` value ("" without tracing)."""
    if _tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def _context_from(value: str) -> Any:
    return _propagator.extract({"traceparent": value}) if value else None


@contextmanager
def span(name: str, parent: str, kind: str = "SERVER", **attributes: Any) -> Iterator[Any]:
    """A span (child of the ``traceparent`` value ``parent`` when given); a no-op
    without tracing."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        name, context=_context_from(parent), kind=SpanKind[kind], attributes=attributes
    ) as current:
        yield current


def header_value(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == TRACEPARENT:
            return value.decode("latin-1")
    return ""


def with_header(headers: list[tuple[bytes, bytes]], value: str) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``traceparent`` set to ``value`` (replacing the client's)."""
    kept = [(k, v) for k, v in headers if k != TRACEPARENT]
    if value:
        kept.append((TRACEPARENT, value.encode("latin-1")))
    return kept
