"""What a request router sees: the request waiting for a replica, and the replicas.

These are views over the router's own state, built by ``serval/router/custom.py``;
user code reads them and never builds them (tests may).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any, Protocol

from serval.context import ReplicaID
from serval.transport.messages import ReplicaInfo


class DeploymentHandleSource(str, enum.Enum):
    """Where the router runs: an HTTP/gRPC proxy, a replica's handle, or elsewhere."""

    UNKNOWN = "UNKNOWN"
    PROXY = "PROXY"
    REPLICA = "REPLICA"


@dataclass
class RequestMetadata:
    """What is known about a request before it runs (Ray Serve's names)."""

    request_id: str = ""
    internal_request_id: str = ""  # unique per routed request in this process
    call_method: str = "__call__"
    route: str = ""  # the HTTP path, for requests from the proxy
    app_name: str = ""
    multiplexed_model_id: str = ""
    is_streaming: bool = False
    is_http_request: bool = False


@dataclass
class RequestRoutingContext:
    """Per-request notes the mixins keep across ``choose_replicas`` calls."""

    multiplexed_start_matching_time: float | None = None
    tried_fewest_multiplexed_models: bool = False
    tried_first_multiplexed_models: bool = False
    tried_same_node: bool = False
    tried_same_az: bool = False
    should_backoff: bool = False


class PendingRequest:
    """A request waiting for a replica: what ``choose_replicas`` is asked to place.

    ``args`` and ``kwargs`` are a handle call's arguments, unpickled only when read
    (empty for HTTP and WebSocket requests, whose path is ``metadata.route``).
    """

    __slots__ = ("_args", "_kwargs", "_payload", "created_at", "metadata", "routing_context")

    def __init__(
        self,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        metadata: RequestMetadata | None = None,
        created_at: float | None = None,
        routing_context: RequestRoutingContext | None = None,
        *,
        payload: bytes = b"",
    ) -> None:
        self._args = args
        self._kwargs = kwargs
        self._payload = payload  # a Call's pickled (args, kwargs)
        self.metadata = metadata if metadata is not None else RequestMetadata()
        self.created_at = time.time() if created_at is None else created_at
        self.routing_context = (
            routing_context if routing_context is not None else (RequestRoutingContext())
        )

    @property
    def args(self) -> list[Any]:
        if self._args is None:
            self._decode()
        assert self._args is not None
        return self._args

    @property
    def kwargs(self) -> dict[str, Any]:
        if self._kwargs is None:
            self._decode()
        assert self._kwargs is not None
        return self._kwargs

    def _decode(self) -> None:
        args: Any = ()
        kwargs: Any = {}
        if self._payload:
            from serval.transport.codec import loads

            args, kwargs = loads(self._payload)
        self._args = list(args) if self._args is None else self._args
        self._kwargs = dict(kwargs) if self._kwargs is None else self._kwargs

    def __repr__(self) -> str:
        return f"PendingRequest(metadata={self.metadata!r})"


class _SlotView(Protocol):
    """The router's record of one replica (``serval.router.router._Slot``)."""

    info: ReplicaInfo
    in_flight: int


class RunningReplica:
    """A replica a request can go to, as the router sees it now.

    ``replica_id``, ``node_id``, ``availability_zone``, ``multiplexed_model_ids``,
    ``max_ongoing_requests`` and ``routing_stats`` (what the deployment's
    ``record_routing_stats()`` last returned) follow Ray Serve's names.
    """

    __slots__ = ("_model_ids", "_replica_id", "_slot")

    def __init__(self, slot: _SlotView, replica_id: ReplicaID, model_ids: set[str]) -> None:
        self._slot = slot
        self._replica_id = replica_id
        self._model_ids = model_ids

    @property
    def replica_id(self) -> ReplicaID:
        return self._replica_id

    @property
    def actor_id(self) -> str:
        """serval has no actors: the replica's unique id."""
        return self._replica_id.unique_id

    @property
    def node_id(self) -> str:
        return self._slot.info.node_id

    @property
    def availability_zone(self) -> str | None:
        return self._slot.info.availability_zone

    @property
    def multiplexed_model_ids(self) -> set[str]:
        return self._model_ids

    @property
    def routing_stats(self) -> dict[str, Any]:
        return self._slot.info.routing_stats

    @property
    def max_ongoing_requests(self) -> int:
        return self._slot.info.max_ongoing_requests

    @property
    def is_cross_language(self) -> bool:
        return False

    @property
    def num_ongoing_requests(self) -> int:
        """Requests this router has on the replica now (serval counts them exactly)."""
        return self._slot.in_flight

    async def get_queue_len(self, *, deadline_s: float = 0.0) -> int:
        """The replica's ongoing requests from this router (no round trip needed)."""
        return self._slot.in_flight

    def push_proxy_handle(self, handle: Any) -> None:
        """Ray Serve's proxies hand replicas their handle; serval needs nothing."""

    def try_send_request(self, pr: PendingRequest, with_rejection: bool = False) -> Any:
        raise NotImplementedError(
            "serval's router sends the request to the replica choose_replicas() ranks "
            "first; a request router does not send requests itself"
        )

    def __repr__(self) -> str:
        return f"RunningReplica({self._replica_id.unique_id})"


class ReplicaResult(Protocol):
    """What ``on_request_routed`` gets: the request placed on its replica."""

    @property
    def replica_id(self) -> str: ...

    def close(self) -> None: ...
