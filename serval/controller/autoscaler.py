"""Autoscaling: how many replicas a deployment should have, from the load routers see.

Every router reports its deployment's *ongoing* requests (running on replicas plus
waiting in its queue) a few times a second while there is any. The autoscaler
averages the total over ``look_back_period_s`` and wants::

    desired = ceil(average_ongoing / target_ongoing_requests)

(scaled by ``upscaling_factor`` / ``downscaling_factor``), clamped to
``[min_replicas, max_replicas]``. A change is applied only after the wish has held for
``upscale_delay_s`` (up) or ``downscale_delay_s`` (down). From zero replicas any queued
request scales up at once: it waits in its router's queue meanwhile, not failing.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass, field

from serval.config import AutoscalingConfig

logger = logging.getLogger("serval.controller")

_REPORT_TTL_S = 3.0


@dataclass
class Autoscaler:
    config: AutoscalingConfig
    reports: dict[str, tuple[float, float]] = field(default_factory=dict)  # router → (t, n)
    samples: collections.deque[tuple[float, float]] = field(default_factory=collections.deque)
    _wish: int | None = None
    _wish_since: float = 0.0
    last_reason: str = ""

    def record(self, router_id: str, ongoing: float, now: float | None = None) -> None:
        self.reports[router_id] = (now if now is not None else time.monotonic(), ongoing)

    def total_ongoing(self, now: float) -> float:
        for rid, (t, _) in list(self.reports.items()):
            if now - t > _REPORT_TTL_S:
                del self.reports[rid]
        return sum(n for _, n in self.reports.values())

    def decide(self, current: int, now: float | None = None) -> tuple[int, str]:
        """The replica count to have now (``current`` when nothing should change)."""
        now = time.monotonic() if now is None else now
        cfg = self.config
        total = self.total_ongoing(now)
        self.samples.append((now, total))
        while self.samples and now - self.samples[0][0] > cfg.look_back_period_s:
            self.samples.popleft()
        average = sum(n for _, n in self.samples) / len(self.samples)
        raw = average / cfg.target_ongoing_requests
        if raw > current:
            raw = current + (raw - current) * (cfg.upscaling_factor or cfg.smoothing_factor)
        elif raw < current:
            raw = current - (current - raw) * (cfg.downscaling_factor or cfg.smoothing_factor)
        desired = max(cfg.min_replicas, min(cfg.max_replicas, math.ceil(raw - 1e-9)))
        if current == 0 and total > 0:
            desired = max(desired, 1)  # a queued request must not wait for the delay
            return self._apply(current, desired, now, 0.0, average)
        if desired == current:
            self._wish = None
            return current, ""
        delay = cfg.upscale_delay_s if desired > current else cfg.downscale_delay_s
        return self._apply(current, desired, now, delay, average)

    def _apply(
        self, current: int, desired: int, now: float, delay: float, average: float
    ) -> tuple[int, str]:
        if self._wish is None or (self._wish > current) != (desired > current):
            self._wish, self._wish_since = desired, now
        else:
            self._wish = desired
        if now - self._wish_since < delay:
            return current, ""
        self._wish = None
        reason = (
            f"scaling from {current} to {desired} replicas: average ongoing requests "
            f"{average:.1f} over the last {self.config.look_back_period_s:g}s, target "
            f"{self.config.target_ongoing_requests:g} per replica"
        )
        self.last_reason = reason
        return desired, reason
