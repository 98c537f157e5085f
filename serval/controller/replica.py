"""One replica as the controller tracks it, and the control calls it answers."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any

from serval.runtime.base import ProcessHandle
from serval.transport.connection import Connection
from serval.transport.messages import ErrorReply, Message, Ok


class ReplicaStatus(enum.Enum):
    STARTING = "STARTING"  # process started, constructor running
    RUNNING = "RUNNING"  # serving and published to routers
    STOPPING = "STOPPING"  # unpublished; draining in-flight requests, then exits


@dataclass(eq=False)
class Replica:
    """A replica's record in its DeploymentState (the process, the control connection)."""

    replica_id: str
    code_hash: str
    status: ReplicaStatus = ReplicaStatus.STARTING
    process: ProcessHandle | None = None
    conn: Connection | None = None
    user_config: Any = None
    started_at: float = field(default_factory=time.monotonic)
    reconfiguring: bool = False
    model_ids: dict[str, None] = field(default_factory=dict)  # held (an ordered set)
    models_seq: int = 0  # the last placement report applied (ReportModels.seq)
    health_failures: int = 0
    last_health_check: float = 0.0
    node_id: str = ""  # where it runs (what it answered to InitReplica or CheckHealth)
    availability_zone: str | None = None
    routing_stats: dict[str, Any] = field(default_factory=dict)  # record_routing_stats()
    last_routing_stats: float = 0.0
    routing_stats_failed: bool = False  # logged once until it answers again
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def placed(replica: Replica, answer: Any) -> None:
    """Note where the replica runs, from its answer to InitReplica or CheckHealth."""
    if isinstance(answer, dict):
        replica.node_id = str(answer.get("node_id") or "")
        zone = answer.get("availability_zone")
        replica.availability_zone = str(zone) if zone else None


async def call(conn: Connection, msg: Message, timeout_s: float | None) -> Any:
    """Send a control message to a replica; return its Ok value or raise ReplyError."""
    stream = conn.open(msg)
    try:
        reply = await asyncio.wait_for(stream.receive(), timeout_s)
    except asyncio.TimeoutError:
        stream.cancel()
        raise
    if isinstance(reply, ErrorReply):
        raise ReplyError(reply)
    assert isinstance(reply, Ok)
    return reply.value


class ReplyError(Exception):
    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply
