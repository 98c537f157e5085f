"""The autoscaling decision, with a clock we control."""

from __future__ import annotations

from serval.config import AutoscalingConfig
from serval.controller.autoscaler import Autoscaler


def scaler(**kw: float) -> Autoscaler:
    base = {
        "min_replicas": 1,
        "max_replicas": 10,
        "target_ongoing_requests": 2,
        "upscale_delay_s": 5,
        "downscale_delay_s": 20,
        "look_back_period_s": 1,
    }
    return Autoscaler(AutoscalingConfig.model_validate({**base, **kw}))


def test_scales_up_after_the_delay_to_match_the_target() -> None:
    a = scaler()
    a.record("r1", 9, now=0)
    assert a.decide(1, now=0) == (1, "")  # wish starts
    a.record("r1", 9, now=4)
    assert a.decide(1, now=4)[0] == 1  # still within upscale_delay_s
    a.record("r1", 9, now=5.5)
    n, reason = a.decide(1, now=5.5)
    assert n == 5  # ceil(9 / 2)
    assert "from 1 to 5" in reason and "target 2" in reason


def test_bounds_and_downscale_delay() -> None:
    a = scaler(max_replicas=3)
    a.record("r1", 100, now=0)
    a.decide(1, now=0)
    a.record("r1", 100, now=6)
    assert a.decide(1, now=6)[0] == 3  # clamped to max_replicas
    a.record("r1", 0, now=10)
    assert a.decide(3, now=10)[0] == 3
    a.record("r1", 0, now=31)
    assert a.decide(3, now=31)[0] == 1  # min_replicas, after downscale_delay_s


def test_a_short_dip_does_not_scale_down() -> None:
    a = scaler()
    a.record("r1", 8, now=0)
    assert a.decide(4, now=0)[0] == 4
    a.record("r1", 0, now=10)
    assert a.decide(4, now=10)[0] == 4
    a.record("r1", 8, now=15)
    assert a.decide(4, now=15)[0] == 4  # back at target: the downscale wish is dropped
    a.record("r1", 0, now=25)
    assert a.decide(4, now=25)[0] == 4  # a new wish starts; 20 s have not passed


def test_scale_from_zero_is_immediate_and_reports_expire() -> None:
    a = scaler(min_replicas=0)
    assert a.decide(0, now=0)[0] == 0
    a.record("r1", 1, now=1)
    assert a.decide(0, now=1)[0] == 1
    a.record("r2", 3, now=2)
    assert a.total_ongoing(now=2) == 4
    assert a.total_ongoing(now=10) == 0  # routers that stopped reporting are forgotten
