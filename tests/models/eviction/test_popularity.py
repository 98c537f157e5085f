"""The popularity policy: rate per byte, counts that outlive eviction, rises and falls
noticed within a few requests, pins respected, and the same answer every time."""

from __future__ import annotations

import random

import pytest

from serval.models.config import CacheConfig
from serval.models.eviction import (
    Budget,
    GDSFPolicy,
    PopularityPolicy,
    TraceRequest,
    make_policy,
    replay,
)
from serval.models.eviction.popularity import SILENCE, SWEEP_MIN

MB = 1_000_000


def _order(policy: PopularityPolicy) -> list[str]:
    out: list[str] = []
    while (key := policy.victim(set(out))) is not None:
        out.append(key)
    return out


def test_picked_by_name_and_the_default() -> None:
    assert isinstance(make_policy("popularity"), PopularityPolicy)
    assert CacheConfig().policy == "popularity"


def test_counts_requests_and_ages_them_with_the_half_life() -> None:
    policy = PopularityPolicy(half_life=100)
    policy.insert("a", size=MB, cost=1.0)
    for _ in range(3):  # fewer than RISE_MIN_REQUESTS: no rise yet
        policy.hit("a")
    assert policy.count("a") == pytest.approx(4, rel=0.05)
    assert policy.short_count("a") == pytest.approx(4, rel=0.25)
    for i in range(30):  # three short half-lives (10 requests each)
        policy.rejected(f"other{i}")
    assert policy.short_count("a") == pytest.approx(4 / 8, rel=0.25)
    for i in range(70):  # one long half-life in all
        policy.rejected(f"more{i}")
    assert policy.count("a") == pytest.approx(2, rel=0.05)
    assert policy.short_count("a") == 0  # decayed below a twentieth: forgotten


def test_rate_per_byte_ranks_and_size_is_ignored_only_between_equal_sizes() -> None:
    policy = PopularityPolicy()
    policy.insert("big", size=50 * MB, cost=30.0)  # slow to load: not weighed
    policy.insert("small", size=5 * MB, cost=0.1)
    policy.insert("mid", size=20 * MB, cost=1.0)
    assert _order(policy) == ["big", "mid", "small"]
    for _ in range(20):
        policy.hit("big")  # 21 requests over 10x the bytes: worth more than "small"
    assert _order(policy) == ["mid", "small", "big"]


def test_a_count_survives_eviction_and_decides_admission() -> None:
    policy = PopularityPolicy()
    budget = Budget(policy, max_entries=1)
    replay([TraceRequest("hot", MB)] * 30 + [TraceRequest("once", MB)], budget)
    assert set(budget.sizes) == {"once"}  # a newcomer always gets its chance...
    assert policy.count("hot") == pytest.approx(30, rel=0.01)  # ..."hot" is remembered
    assert budget.admit("hot", MB, 1.0).admitted  # and comes back over the one-off
    cold = budget.admit("once", MB, 1.0)
    assert cold.admitted is False and "values the entries" in cold.reason


def test_a_rise_is_believed_after_a_burst_not_a_half_life() -> None:
    def run(policy: PopularityPolicy | GDSFPolicy) -> str | None:
        policy.insert("steady", size=MB, cost=1.0)
        for i in range(10_000):  # "steady" is asked for once in 200 requests
            policy.rejected(f"cold{i}") if i % 200 else policy.hit("steady")
        policy.insert("riser", size=MB, cost=1.0)
        for i in range(60):  # then "riser" every other request
            policy.hit("riser") if i % 2 else policy.rejected(f"later{i}")
        return policy.victim()

    assert run(PopularityPolicy(half_life=10_000)) == "steady"
    assert run(GDSFPolicy(half_life=10_000)) == "riser"  # the long count alone: not yet


def test_a_fall_lets_yesterdays_favourite_leave_within_a_few_of_its_intervals() -> None:
    def run(policy: PopularityPolicy | GDSFPolicy) -> str | None:
        policy.insert("fallen", size=MB, cost=1.0)
        policy.insert("modest", size=MB, cost=1.0)
        for i in range(4_000):  # "fallen" every 2nd request, "modest" every 50th
            if i % 2 == 0:
                policy.hit("fallen")
            elif i % 50 == 1:
                policy.hit("modest")
            else:
                policy.rejected(f"cold{i}")
        assert policy.victim() == "modest"
        # "fallen" stops: SILENCE of its intervals (2 requests each), seen by a sweep.
        for i in range(int(SILENCE * 2) + 2 * SWEEP_MIN):
            policy.hit("modest") if i % 50 == 0 else policy.rejected(f"later{i}")
        return policy.victim()

    assert run(PopularityPolicy(half_life=1_000)) == "fallen"
    assert run(GDSFPolicy(half_life=1_000)) == "modest"  # its decaying count: for long


def test_pinned_entries_are_never_victims() -> None:
    budget = Budget(PopularityPolicy(), max_entries=2)
    budget.admit("pinned", 50 * MB, 1.0)
    budget.admit("kept", MB, 1.0)
    decision = budget.admit("new", MB, 1.0, protected={"pinned"})
    assert decision.admitted and decision.victims == ["kept"]
    assert budget.policy.victim(skip={"pinned"}) == "new"


def test_the_same_trace_gives_the_same_schedule() -> None:
    rng = random.Random(11)
    keys = [f"m{i}" for i in range(200)]
    sizes = {k: rng.randint(1, 50) * MB for k in keys}
    weights = [1 / (i + 1) ** 1.1 for i in range(len(keys))]
    trace = [TraceRequest(k, sizes[k]) for k in rng.choices(keys, weights, k=5_000)]

    def run() -> tuple[int, int, list[str]]:
        budget = Budget(PopularityPolicy(half_life=1_000), max_bytes=300 * MB)
        result = replay(trace, budget)
        return result.misses, result.bytes_loaded, sorted(budget.sizes)

    first = run()
    assert first == run()
    assert 0 < first[0] < len(trace)


def test_fewer_loads_than_gdsf_when_popularity_shifts() -> None:
    rng = random.Random(5)
    keys = [f"m{i}" for i in range(300)]
    sizes = {k: rng.randint(1, 20) * MB for k in keys}
    trace: list[TraceRequest] = []
    for _ in range(4):  # four phases, each with its own hot set
        rng.shuffle(keys)
        weights = [1 / (i + 1) ** 1.1 for i in range(len(keys))]
        trace += [TraceRequest(k, sizes[k]) for k in rng.choices(keys, weights, k=5_000)]
    loads = {
        name: replay(trace, Budget(make_policy(name), max_bytes=200 * MB)).misses
        for name in ("popularity", "gdsf")
    }
    assert loads["popularity"] < loads["gdsf"]


def test_under_a_count_limit_every_model_takes_one_slot_whatever_its_size() -> None:
    def survivor(**limits: int) -> set[str]:
        budget = Budget(PopularityPolicy(), **limits)
        trace = [TraceRequest("big", 90 * MB)] * 3 + [TraceRequest("small", MB)] * 2
        replay([*trace, TraceRequest("other", MB)], budget)
        return set(budget.sizes)

    # Two slots: "big" (3 requests) beats "small" (2) for the one left beside "other".
    assert survivor(max_entries=2) == {"big", "other"}
    # 91 MB: "big" takes 99% of the bytes for 3 requests; "small" 1% for 2.
    assert survivor(max_bytes=91 * MB) == {"small", "other"}


def test_a_budget_tells_the_policy_its_limits_when_they_change() -> None:
    policy = PopularityPolicy()
    budget = Budget(policy, max_entries=2)
    budget.admit("big", 90 * MB, 1.0)
    budget.admit("small", MB, 1.0)
    policy.hit("big")
    assert policy.victim() == "small"  # slots: "big" has more requests
    budget.max_bytes = 100 * MB  # now bytes count too: "big" takes nearly all of them
    assert policy.victim() == "big"
