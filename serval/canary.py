"""Canary releases: a new version of an application beside the running one.

Example::

    serval.run(shop_v2, name="shop", canary=serval.CanaryConfig(weight=0.1))
    ...                      # 10% of /shop traffic goes to v2; both versions serve
    serval.promote("shop")   # v2 replaces v1 (rolling, zero downtime)
    serval.rollback("shop")  # or: v2 goes away, v1 serves everything

The proxy splits traffic by weight (or, with ``sticky_header``, by a hash of that
header, so one user keeps seeing one version), counts requests, errors and latency
per version, and reports them to the controller, which rolls the canary back by
itself when its error rate exceeds the stable version's by more than
``max_error_rate_increase``, or its p99 latency is more than ``max_p99_ratio`` times
the stable one's (judged once each version has ``min_requests``). With
``shadow=True`` the stable version answers every request and the canary gets a copy
of a ``weight`` fraction of them, whose answers are discarded.
"""

from __future__ import annotations

from pydantic import Field

from serval.config import _Options

__all__ = ["CanaryConfig"]

CANARY_SUFFIX = "@canary"


class CanaryConfig(_Options):
    """How much traffic a canary gets and when it is rolled back automatically."""

    weight: float = Field(0.1, gt=0, lt=1)
    sticky_header: str | None = None
    shadow: bool = False
    max_error_rate_increase: float = Field(0.05, ge=0)
    max_p99_ratio: float = Field(2.0, gt=1)
    min_requests: int = Field(50, ge=1)


def canary_app_name(app: str) -> str:
    return f"{app}{CANARY_SUFFIX}"


def parse_weight(text: str) -> float:
    """``"10%"`` or ``"0.1"`` → 0.1."""
    text = text.strip()
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    return value
