"""TinyLFU admission: one-off tenants do not flush the models everybody uses."""

from __future__ import annotations

import pytest

from serval.exceptions import ConfigError
from serval.models.eviction import (
    Budget,
    LRUPolicy,
    TinyLFU,
    TraceRequest,
    make_admission,
    replay,
)
from serval.models.eviction.admission import CountMinSketch

HOT = [f"hot{i}" for i in range(4)]


def test_sketch_never_undercounts_and_halves() -> None:
    sketch = CountMinSketch(width=64)
    for i in range(200):
        sketch.add(f"k{i % 20}")
    assert all(sketch.estimate(f"k{i}") >= 10 for i in range(20))
    sketch.halve()
    assert all(sketch.estimate(f"k{i}") >= 5 for i in range(20))
    assert sketch.width == 64
    with pytest.raises(ValueError):
        CountMinSketch(width=0)


def test_doorkeeper_absorbs_first_requests() -> None:
    doorman = TinyLFU(expected_entries=100)
    doorman.record("once")
    assert doorman.frequency("once") == 1
    assert doorman.sketch.estimate("once") == 0  # never reached the sketch
    doorman.record("once")
    assert doorman.frequency("once") == 2


def test_admits_only_what_is_asked_for_more_than_its_victims() -> None:
    doorman = TinyLFU(expected_entries=100)
    for _ in range(5):
        doorman.record("hot")
    doorman.record("newcomer")
    assert not doorman.admit("newcomer", victims=["hot"])
    assert doorman.admit("hot", victims=["newcomer"])
    assert doorman.admit("newcomer", victims=[])  # room to spare: always


def test_recent_means_the_last_sample() -> None:
    doorman = TinyLFU(expected_entries=10, sample_size=20)
    for _ in range(8):
        doorman.record("was-hot")
    for i in range(40):  # two samples of other traffic: was-hot's count halves away
        doorman.record(f"other{i % 4}")
    doorman.record("new")
    doorman.record("new")
    assert doorman.frequency("was-hot") < doorman.frequency("new")


def _trace_with_a_burst_of_one_off_tenants() -> list[TraceRequest]:
    trace = [TraceRequest(k, 1) for _ in range(30) for k in HOT]
    for i in range(40):  # a burst: every other request is a tenant seen once
        trace.append(TraceRequest(f"once{i}", 1))
        trace.append(TraceRequest(HOT[i % len(HOT)], 1))
    return trace


def test_filter_keeps_one_off_tenants_from_flushing_hot_models() -> None:
    trace = _trace_with_a_burst_of_one_off_tenants()
    plain = Budget(LRUPolicy(), max_entries=4)
    guarded = Budget(LRUPolicy(), max_entries=4, admission=TinyLFU(expected_entries=100))
    flushed = replay(trace, plain)
    kept = replay(trace, guarded)
    assert set(guarded.sizes) == set(HOT)
    assert kept.misses == len(HOT) + 40  # the hot models' first loads and the one-offs
    assert flushed.misses > kept.misses  # each one-off pushed a hot model out


def test_picked_by_name() -> None:
    assert isinstance(make_admission("tinylfu", expected_entries=10), TinyLFU)
    with pytest.raises(ConfigError, match="admission 'nope'"):
        make_admission("nope")
    with pytest.raises(ValueError, match="expected_entries"):
        TinyLFU(expected_entries=0)
