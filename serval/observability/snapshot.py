"""One process's metrics as data: what crosses the transport when the proxy scrapes.

A :class:`Snapshot` holds the families of one process (samples with their labels) and,
for a replica serving many models, one row of counters per model id
(:data:`MODEL_COLUMNS`); the proxy picks the top N models over every replica when it
merges (:mod:`serval.observability.merge`), so replicas send the rows unranked.
The builders turn :mod:`~serval.observability.tables` rows and prometheus-client
registries into families.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec
from prometheus_client.registry import CollectorRegistry

from serval.observability.families import FAMILIES
from serval.observability.tables import Key

__all__ = [
    "MODEL_COLUMNS",
    "Family",
    "Sample",
    "Snapshot",
    "counter",
    "decode",
    "encode",
    "from_registry",
    "gauge",
    "histogram",
    "pack_models",
    "unpack_models",
]

# The counters of one model id in one replica, in this order.
MODEL_COLUMNS: Final = (
    "requests",  # hits + misses
    "hits",
    "misses",
    "loads",
    "load_failures",
    "evictions",
    "resident",  # 1 when in memory now
    "loading",  # 1 when a load is in flight
    "bytes",  # its size in memory (0 when not resident)
    "load_time_s",  # how long its last load took
)
COLUMN: Final = {name: i for i, name in enumerate(MODEL_COLUMNS)}


class Sample(msgspec.Struct, array_like=True):
    name: str
    labels: dict[str, str]
    value: float


class Family(msgspec.Struct, array_like=True):
    name: str  # counters without "_total", as prometheus-client names them
    kind: str  # counter | gauge | histogram | summary | info | …
    help: str
    samples: list[Sample]


class Snapshot(msgspec.Struct, array_like=True):
    process: str  # proxy | controller | replica
    labels: dict[str, str]  # added to each sample that lacks them (replica, application, …)
    families: list[Family]
    # Model rows, packed: the ids, and their MODEL_COLUMNS as doubles, row after row
    # (array("d") bytes: 10,000 models decode in microseconds, not as 10,000 lists).
    model_ids: list[str] = []
    model_values: bytes = b""


def pack_models(rows: dict[str, list[float]]) -> tuple[list[str], bytes]:
    """``{model id: MODEL_COLUMNS}`` as (ids, packed values) for a :class:`Snapshot`."""
    values = array("d", itertools.chain.from_iterable(rows.values()))  # one loop, in C
    return list(rows), values.tobytes()


def unpack_models(snapshot: Snapshot) -> tuple[list[str], array[float]]:
    """A snapshot's model ids and their values (row-major, MODEL_COLUMNS per id)."""
    values = array("d")
    values.frombytes(snapshot.model_values)
    if len(values) != len(snapshot.model_ids) * len(MODEL_COLUMNS):
        raise ValueError(
            f"a snapshot has {len(snapshot.model_ids)} model ids but {len(values)} values"
        )
    return snapshot.model_ids, values


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def encode(snapshot: Snapshot) -> bytes:
    return _encoder.encode(snapshot)


def decode(data: bytes) -> Snapshot:
    return _decoder.decode(data)


def _family(name: str) -> Family:
    spec = FAMILIES[name]
    return Family(name, spec.kind, spec.help, [])


def counter(name: str, labels: Sequence[str], rows: Iterable[tuple[Key, float]]) -> Family:
    family = _family(name)
    total = f"{name}_total"
    family.samples = [
        Sample(total, dict(zip(labels, key, strict=True)), value) for key, value in rows
    ]
    return family


def gauge(name: str, labels: Sequence[str], rows: Iterable[tuple[Key, float]]) -> Family:
    family = _family(name)
    family.samples = [
        Sample(name, dict(zip(labels, key, strict=True)), value) for key, value in rows
    ]
    return family


def histogram(
    name: str,
    labels: Sequence[str],
    bounds: tuple[float, ...],
    rows: Iterable[tuple[Key, list[float]]],
) -> Family:
    """A histogram family from :class:`~serval.observability.tables.HistogramTable` rows."""
    family = _family(name)
    les = [_le(b) for b in bounds] + ["+Inf"]
    bucket, count, total = f"{name}_bucket", f"{name}_count", f"{name}_sum"
    samples = family.samples
    for key, row in rows:
        base = dict(zip(labels, key, strict=True))
        running = 0.0
        for le, n in zip(les, row, strict=False):
            running += n
            samples.append(Sample(bucket, {**base, "le": le}, running))
        samples.append(Sample(count, base, running))
        samples.append(Sample(total, base, row[-1]))
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def from_registry(registry: CollectorRegistry) -> list[Family]:
    """The families of a prometheus-client registry (user metrics), without the
    ``_created`` timestamps (noise once merged over processes)."""
    out = []
    for metric in registry.collect():
        samples = [
            Sample(s.name, dict(s.labels), float(s.value))
            for s in metric.samples
            if not s.name.endswith("_created")
        ]
        out.append(Family(metric.name, metric.type, metric.documentation, samples))
    return out
