"""Per-request and per-replica context: which model, which replica.

``get_multiplexed_model_id()`` reads the model id of the request being handled
(from the ``serve_multiplexed_model_id`` HTTP header or
``handle.options(multiplexed_model_id=...)``). It works in async code and in sync
code that serval runs in its thread pool, because the context is carried in a
:class:`contextvars.ContextVar` that serval copies into the worker thread.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DeploymentID",
    "ReplicaContext",
    "ReplicaID",
    "RequestContext",
    "get_multiplexed_model_id",
    "get_replica_context",
    "get_request_context",
]

MODEL_ID_HEADER = "serve_multiplexed_model_id"


@dataclass(frozen=True)
class RequestContext:
    """What serval knows about the request being handled."""

    request_id: str = ""
    multiplexed_model_id: str = ""
    app_name: str = ""
    route: str = ""
    # Set when the request is cancelled; shared with the thread a sync handler runs in.
    _cancelled: _Flag = field(default_factory=lambda: _Flag(), repr=False, compare=False)


class _Flag:
    __slots__ = ("is_set",)

    def __init__(self) -> None:
        self.is_set = False


@dataclass(frozen=True)
class DeploymentID:
    """Identity of one deployment: ``name`` within application ``app_name``."""

    name: str
    app_name: str = "default"


@dataclass(frozen=True)
class ReplicaID:
    """Identity of one replica: ``unique_id`` within ``app_name``/``deployment_name``."""

    unique_id: str
    deployment_name: str
    app_name: str

    @property
    def deployment_id(self) -> DeploymentID:
        """The replica's deployment (Ray Serve's ``ReplicaID.deployment_id``)."""
        return DeploymentID(self.deployment_name, self.app_name)

    def to_full_id_str(self) -> str:
        return f"{self.app_name}#{self.deployment_name}#{self.unique_id}"


@dataclass
class ReplicaContext:
    """Returned by :func:`serval.get_replica_context` inside a replica.

    Example::

        @serval.deployment
        class Model:
            def __call__(self, request):
                ctx = serval.get_replica_context()
                return {"replica": ctx.replica_id.unique_id}
    """

    app_name: str
    deployment: str
    replica_id: ReplicaID
    servable_object: Any = field(default=None, repr=False)

    def is_request_cancelled(self) -> bool:
        """Whether the request being handled here was cancelled: its HTTP client went
        away, or its caller cancelled the ``DeploymentResponse``.

        An async handler is cancelled outright (``asyncio.CancelledError`` at its next
        ``await``); a thread cannot be interrupted, so a long-running sync handler asks
        this now and then and stops early::

            def __call__(self, request):
                for step in range(1000):
                    if serval.get_replica_context().is_request_cancelled():
                        return None  # nobody is waiting for the answer
                    self.work(step)
        """
        return _request_context.get()._cancelled.is_set

    @property
    def replica_tag(self) -> str:
        """Ray Serve's older name for the replica's id."""
        return self.replica_id.unique_id


_EMPTY_REQUEST = RequestContext()
_request_context: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "serval_request_context",
    default=_EMPTY_REQUEST,
)
_replica_context: ReplicaContext | None = None
# Local testing mode runs several deployments in one process: the one whose code runs.
_local_replica: contextvars.ContextVar[ReplicaContext | None] = contextvars.ContextVar(
    "serval_local_replica", default=None
)


def get_request_context() -> RequestContext:
    """The context of the request being handled (empty outside a request)."""
    return _request_context.get()


def get_multiplexed_model_id() -> str:
    """The model id of the request being handled, or ``""`` when it has none.

    Example::

        model = await self.get_model(serval.get_multiplexed_model_id())
    """
    return _request_context.get().multiplexed_model_id


@dataclass
class ServedModel:
    """Which model version answered the request being handled: filled by
    ``@serval.multiplexed`` when it returns a model, read by the replica to name it in
    the response headers (``serval-model-version``, ``serval-model-alias``)."""

    model_id: str = ""
    version: str | None = None  # "name@version", when the loader knows it
    alias: str | None = None  # the alias the id named ("latest" for a bare name)

    def headers(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if self.version:
            out.append((b"serval-model-version", self.version.encode()))
        if self.alias:
            out.append((b"serval-model-alias", self.alias.encode()))
        return out


_served_model: contextvars.ContextVar[ServedModel | None] = contextvars.ContextVar(
    "serval_served_model", default=None
)


def _served_model_record() -> ServedModel:
    """The request's record of the model that served it (made on first use)."""
    record = _served_model.get()
    if record is None:
        record = ServedModel()
        _served_model.set(record)
    return record


def get_replica_context() -> ReplicaContext:
    """The running replica's context; raises ``RuntimeError`` outside a replica."""
    local = _local_replica.get()
    if local is not None:
        return local
    if _replica_context is None:
        raise RuntimeError(
            "get_replica_context() may only be called from inside a serval replica "
            "(a deployment's constructor or methods)."
        )
    return _replica_context


def _get_internal_replica_context() -> ReplicaContext | None:
    """The running replica's context, or None outside a replica (Ray Serve's internal
    helper of that name, which its guides use)."""
    return _local_replica.get() or _replica_context


def _set_replica_context(ctx: ReplicaContext | None) -> None:
    global _replica_context
    _replica_context = ctx


def _mark_cancelled() -> None:
    """The request of this context was cancelled (called by the replica)."""
    ctx = _request_context.get()
    if ctx is not _EMPTY_REQUEST:
        ctx._cancelled.is_set = True


def _set_request_context(ctx: RequestContext) -> contextvars.Token[RequestContext]:
    return _request_context.set(ctx)
