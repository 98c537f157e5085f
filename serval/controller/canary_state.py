"""A running canary as the controller sees it: its config, per-version traffic, verdict."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from serval.canary import CanaryConfig

_SAMPLES = 4000


@dataclass
class VersionStats:
    requests: int = 0
    errors: int = 0
    latencies_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_SAMPLES)
    )

    def add(self, requests: int, errors: int, latencies_ms: list[float]) -> None:
        self.requests += requests
        self.errors += errors
        self.latencies_ms.extend(latencies_ms)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def p99_ms(self) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p99_ms": round(self.p99_ms(), 2),
        }


@dataclass
class CanaryState:
    app: str
    canary_app: str
    config: CanaryConfig
    stable: VersionStats = field(default_factory=VersionStats)
    canary: VersionStats = field(default_factory=VersionStats)

    def record(self, version: str, requests: int, errors: int, latencies: list[float]) -> None:
        (self.canary if version == "canary" else self.stable).add(requests, errors, latencies)

    def verdict(self) -> str | None:
        """Why the canary must be rolled back, or None while it looks fine."""
        cfg, c, s = self.config, self.canary, self.stable
        if c.requests < cfg.min_requests:
            return None
        if c.error_rate > s.error_rate + cfg.max_error_rate_increase:
            return (
                f"canary error rate {c.error_rate:.1%} exceeds the stable version's "
                f"{s.error_rate:.1%} by more than {cfg.max_error_rate_increase:.1%}"
            )
        if (
            s.requests >= cfg.min_requests
            and s.p99_ms() > 0
            and c.p99_ms() > cfg.max_p99_ratio * s.p99_ms()
        ):
            return (
                f"canary p99 latency {c.p99_ms():.1f} ms exceeds {cfg.max_p99_ratio:g}x "
                f"the stable version's {s.p99_ms():.1f} ms"
            )
        return None
