"""The replica's answer to ``GetRoutingStats``: the deployment's ``record_routing_stats()``.

Ray Serve's name and contract: a method (sync or async) returning a dict, which the
controller publishes to every router as the replica's ``RunningReplica.routing_stats``
(what custom request routers rank by). A deployment without the method answers ``{}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from serval.exceptions import ServalError
from serval.replica.user_code import UserCode

METHOD = "record_routing_stats"


async def record_routing_stats(code: UserCode) -> dict[str, Any]:
    if not code.has_method(METHOD):
        return {}
    stats = await code.call(METHOD, (), {})
    if not isinstance(stats, dict) or not all(isinstance(k, str) for k in stats):
        raise ServalError(f"{METHOD}() must return a dict with str keys, got {stats!r}")
    try:
        msgspec.msgpack.encode(stats)  # it crosses two processes: fail here, not there
    except (TypeError, msgspec.EncodeError) as exc:
        raise ServalError(f"{METHOD}() returned a value serval cannot send: {exc}") from None
    return stats
