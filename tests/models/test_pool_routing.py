"""The many-models routing table: names and patterns to pools, per-model canaries."""

from __future__ import annotations

import random
from collections import Counter

from serval.models.pool_routing import PoolRouting, is_pattern
from serval.transport.messages import ModelCanaryRoute


def test_exact_names_then_patterns_in_order_else_the_default() -> None:
    routing = PoolRouting(
        {"t1": "gold", "t2*": "silver", "t2[0-4]": "gold", "t9": "gone"},
        {},
        ["gold", "silver"],
        "shared",
    )
    assert routing.pool_of("t1") == "gold"
    assert routing.pool_of("t21") == "silver"  # first pattern that matches wins
    assert routing.pool_of("t5") == "shared"
    assert routing.pool_of("t9") == "shared"  # a pool the table does not know
    assert is_pattern("t2*") and is_pattern("t[12]") and not is_pattern("tenant7")


def test_canaries_split_by_weight_and_fall_back_to_stable_or_latest() -> None:
    canaries = {
        "a": ModelCanaryRoute("3", 0.25, "2"),
        "b": ModelCanaryRoute("5", 0.5, None),
    }
    routing = PoolRouting({}, canaries, [], "shared", rng=random.Random(7))
    a = Counter(routing.model_id_of("a") for _ in range(4000))
    assert set(a) == {"a@3", "a@2"} and 800 <= a["a@3"] <= 1200, a
    b = Counter(routing.model_id_of("b") for _ in range(4000))
    assert set(b) == {"b@5", "b"} and 1800 <= b["b@5"] <= 2200, b
    assert routing.model_id_of("c") == "c"
