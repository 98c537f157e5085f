"""The router of one deployment: which replica gets the next request.

- **Choice**: power of two random choices on the in-flight counts this router
  tracks itself, among replicas below their ``max_ongoing_requests``.
- **Queue**: when every replica is full the request waits in a FIFO; when
  ``max_queued_requests`` requests already wait, it fails at once with
  ``BackPressureError`` (HTTP 503 + Retry-After).
- **Retries**: a replica that cannot be reached or dies before answering is
  skipped until the controller's next update, and the request goes to another
  one (at most ``max_attempts`` tries). A request whose replica died mid-way may
  therefore run twice: delivery is at-least-once when replicas crash.
- **Models**: a request with a model id goes to a replica that holds the model, or
  to the one rendezvous hashing picks for it (``model_choice.py``). When a hot model
  gets a copy while a replica holds it warm, the copy loads in the background
  (``ModelCommand("prewarm")`` to the new replica) and requests keep going to the warm
  holders (waiting for a slot there if they are full) until it is loaded: no request
  waits for a copy's load, which in a fresh replica process includes importing the
  model's framework (~1 s for scikit-learn).
- **Updates**: the controller publishes the set of running replicas; a replica
  that leaves the set gets no new requests and its connection closes when its last
  request here finishes.
- **A user's request router** (``request_router_config``) replaces only the choice
  (``custom.py``); counting, queueing and retries stay the same.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable

from serval._node import this_node
from serval.exceptions import BackPressureError, NotFoundError, ReplicaUnavailableError
from serval.request_router.types import DeploymentHandleSource, PendingRequest
from serval.router import model_choice
from serval.router.assignment import Assignment, CustomAssignment, _Slot
from serval.router.copies import BackgroundCopies
from serval.router.custom import DECLINED, CustomChoice, Declined, backoff_s
from serval.router.replica_client import ReplicaClient, SocketReplicaClient
from serval.transport.connection import ReplyStream
from serval.transport.messages import (
    DeploymentTarget,
    ErrorReply,
    Message,
    ModelDelta,
    RequestRouterSpec,
    Update,
)

logger = logging.getLogger("serval.router")

_DOWN_FOR_S = 2.0
_RECENT_FOR_S = 10.0


class Router:
    """Routes requests of one deployment (see the module docstring)."""

    def __init__(
        self,
        name: str,
        client_factory: Callable[[str], ReplicaClient] = SocketReplicaClient,
        max_attempts: int = 3,
        source: DeploymentHandleSource = DeploymentHandleSource.UNKNOWN,
    ) -> None:
        self.name = name
        self.source = source
        self._client_factory = client_factory
        self._max_attempts = max_attempts
        self._slots: dict[str, _Slot] = {}
        self._choices: list[_Slot] = []
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.max_queued = -1
        self.overload_status = 503
        self.retry_after_s = 1.0
        self.exists = True
        self.autoscaling = False
        # model id → replicas that hold it (published by the controller) ...
        self._holders: dict[str, set[str]] = {}
        # ... and where this router sent it recently (before the controller knows) ...
        self._recent: dict[str, tuple[str, float]] = {}
        # ... and where it is copying it in the background (no requests go there yet).
        self._copies = BackgroundCopies(self._copied)
        self.known = asyncio.Event()  # set once the first update arrived
        self.rejected: dict[str, int] = {}  # 503s by cause, for metrics
        # The deployment's own request router (request_router_config), or None.
        self._custom: CustomChoice | None = None
        self._custom_spec: RequestRouterSpec | None = None

    # -- updates from the controller --------------------------------------------------

    def update(self, target: DeploymentTarget) -> None:
        self.exists = target.exists
        self.max_queued = target.max_queued_requests
        self.overload_status = target.overload_status
        self.retry_after_s = target.retry_after_s
        self.autoscaling = target.autoscaling
        wanted = {r.replica_id: r for r in target.replicas}
        for rid, slot in list(self._slots.items()):
            if rid not in wanted:
                slot.removed = True
                del self._slots[rid]
                if slot.in_flight == 0:
                    slot.client.close()
        for rid, info in wanted.items():
            known = self._slots.get(rid)
            if known is None:
                self._slots[rid] = _Slot(info, self._client_factory(info.address))
            else:
                known.info = info
                known.down_until = 0.0
        self._choices = list(self._slots.values())
        holders: dict[str, set[str]] = {}
        for info in target.replicas:
            for model_id in info.model_ids:
                holders.setdefault(model_id, set()).add(info.replica_id)
        self._holders = holders
        if target.request_router is not None or self._custom_spec is not None:
            self._update_custom(target.request_router)
        self.known.set()
        self._wake(len(self._waiters))

    def _update_custom(self, spec: RequestRouterSpec | None) -> None:
        if spec != self._custom_spec:
            self._custom_spec, self._custom = spec, None
            if spec is not None:
                node_id, zone = this_node()
                try:
                    self._custom = CustomChoice(
                        self.name,
                        spec,
                        source=self.source,
                        node_id=node_id,
                        availability_zone=zone,
                        num_pending=lambda: len(self._waiters),
                    )
                except Exception as exc:
                    logger.error(
                        "request router %s of %s cannot be loaded in this process: %s: %s; "
                        "requests get serval's own choice",
                        spec.class_path,
                        self.name,
                        type(exc).__name__,
                        exc,
                        exc_info=exc,
                    )
        if self._custom is not None:
            self._custom.update(self._choices)

    def on_update(self, update: Update) -> None:
        """An update of this deployment's topic from the controller."""
        if update.target is not None:
            self.update(update.target)
        elif update.models is not None:
            self.apply_models(update.models)

    def apply_models(self, delta: ModelDelta) -> None:
        """One replica's placement change (the controller sends deltas, not tables)."""
        rid = delta.replica_id
        for model_id in delta.removed:
            holders = self._holders.get(model_id)
            if holders is not None:
                holders.discard(rid)
                if not holders:
                    del self._holders[model_id]
        for model_id in delta.added:
            self._holders.setdefault(model_id, set()).add(rid)
        if self._custom is not None:
            self._custom.apply_models(delta)

    @property
    def replica_ids(self) -> list[str]:
        return list(self._slots)

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self._slots.values())

    # -- choosing ------------------------------------------------------------------------

    def _pick(self, model_id: str = "") -> _Slot | None:
        if model_id:
            return self._pick_for_model(model_id)
        choices = self._choices
        n = len(choices)
        if n == 1:
            slot = choices[0]
            return slot if self._free(slot) else None
        if n == 0:
            return None
        a, b = random.sample(choices, 2)
        fa, fb = self._free(a), self._free(b)
        if fa and fb:
            return a if a.in_flight <= b.in_flight else b
        if fa or fb:
            return a if fa else b
        free = [s for s in choices if self._free(s)]
        return min(free, key=lambda s: s.in_flight) if free else None

    def _pick_for_model(self, model_id: str) -> _Slot | None:
        holders = self._holders.get(model_id, set())
        recent = self._recent.get(model_id)
        if recent is not None:
            if time.monotonic() - recent[1] < _RECENT_FOR_S and recent[0] in self._slots:
                holders = holders | {recent[0]}
            else:
                del self._recent[model_id]
                recent = None
        warming = self._copies.warming(model_id)
        # Sent to a new replica lately, or copying: its load may still run, no copy yet.
        may_copy = recent is None and not warming
        slot = model_choice.choose(model_id, self._choices, holders, self._free, may_copy)
        if slot is None or slot.replica_id in holders:
            return slot
        now = time.monotonic()
        warm = [s for s in self._choices if s.replica_id in holders and s.down_until < now]
        if warm:
            # A copy while the model is warm elsewhere: load it there in the background
            # and keep this request on a warm holder (or let it wait for one).
            if not warming:
                self._copies.start(model_id, slot)
            free = [s for s in warm if self._free(s)]
            return min(free, key=lambda s: s.in_flight) if free else None
        self._remember(model_id, slot.replica_id)  # a cold model's first load
        return slot

    def _copied(self, model_id: str, slot: _Slot) -> None:
        """A background copy is loaded: its replica is a holder from now on."""
        if self._slots.get(slot.replica_id) is slot:
            self._holders.setdefault(model_id, set()).add(slot.replica_id)
            self._wake(len(self._waiters))  # requests waiting for a holder may go there

    def _remember(self, model_id: str, replica_id: str) -> None:
        """Note where a cold model was sent. The dict stays in time order (re-inserted
        at the end), so expired entries are dropped from its front: a stream of ids
        asked for once each (100,000 tenants) does not pile up here."""
        now = time.monotonic()
        recent = self._recent
        recent.pop(model_id, None)
        recent[model_id] = (replica_id, now)
        while True:
            oldest = next(iter(recent))
            if now - recent[oldest][1] < _RECENT_FOR_S:
                break
            del recent[oldest]

    @staticmethod
    def _free(slot: _Slot) -> bool:
        return slot.in_flight < slot.info.max_ongoing_requests and (
            slot.down_until == 0.0 or slot.down_until < time.monotonic()
        )

    async def _acquire(self, model_id: str = "") -> _Slot | None:
        """A slot by serval's own choice; None when the deployment's request router
        arrived (the first update, or a new config) while this request waited."""
        slot: _Slot | None = self._pick(model_id) if not self._waiters else None
        while slot is None:
            await self._wait_turn()
            if self._custom is not None:
                return None
            slot = self._pick(model_id)
        slot.in_flight += 1
        return slot

    async def _acquire_custom(self, pending: PendingRequest, queued: bool = False) -> _Slot:
        """``_acquire`` with the user's request router choosing (``router/custom.py``);
        ``queued``: this request already waited its turn."""
        chosen = await self._choose(pending) if queued or not self._waiters else None
        attempt = 0
        while not isinstance(chosen, _Slot):
            retry_in = None
            if chosen is DECLINED:  # replicas had room, none was chosen: ask again soon
                retry_in = backoff_s(attempt)
                attempt += 1
            await self._wait_turn(retry_in)
            chosen = await self._choose(pending)
        chosen.in_flight += 1
        return chosen

    async def _choose(self, pending: PendingRequest) -> _Slot | Declined | None:
        custom = self._custom  # (the config may have changed while the request waited)
        if custom is None:
            return self._pick(pending.metadata.multiplexed_model_id)
        return await custom.choose(self, pending)

    async def _wait_turn(self, retry_in: float | None = None) -> None:
        """Wait in the queue until a replica frees a slot (or ``retry_in`` passes); fail
        at once when the deployment is gone or the queue is full."""
        if not self.exists:
            raise NotFoundError(f"deployment {self.name!r} does not exist")
        if 0 <= self.max_queued <= len(self._waiters):
            self.rejected["queue_full"] = self.rejected.get("queue_full", 0) + 1
            raise BackPressureError(
                f"deployment {self.name!r} is at capacity: {len(self._waiters)} requests "
                f"queued (max_queued_requests={self.max_queued})",
                retry_after_s=self.retry_after_s,
                status_code=self.overload_status,
            )
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # Nobody wakes us when the only free replicas are marked down: look again
            # when the earliest of them comes back. (asyncio.wait costs more than a
            # plain await, and this is the request path under load.)
            down_in = self._next_retry_in()
            if down_in is not None:
                retry_in = down_in if retry_in is None else min(retry_in, down_in)
            if retry_in is None:
                await waiter
            else:
                await asyncio.wait([waiter], timeout=retry_in)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake(1)  # pass the wake-up on to the next in line
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _next_retry_in(self) -> float | None:
        downs = [s.down_until for s in self._choices if s.down_until]
        return max(0.01, min(downs) - time.monotonic()) if downs else None

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def _release(self, slot: _Slot) -> None:
        slot.in_flight -= 1
        slot.served += 1
        if slot.removed:
            if slot.in_flight == 0:
                slot.client.close()
            return
        if self._waiters:
            self._wake(1)

    # -- sending ---------------------------------------------------------------------

    async def assign(self, msg: Message) -> Assignment:
        """Place ``msg`` on a replica and wait for its first reply."""
        pending: PendingRequest | None = None  # made only for a user's request router
        last: ErrorReply | None = None
        model_id: str = getattr(msg, "model_id", "")
        for _ in range(self._max_attempts):
            custom = self._custom
            if custom is None:
                slot = await self._acquire(model_id)
                if slot is None:  # a request router arrived while the request waited
                    custom = self._custom
                    assert custom is not None
                    pending = pending or custom.pending(msg)
                    slot = await self._acquire_custom(pending, queued=True)
            else:
                pending = pending or custom.pending(msg)
                slot = await self._acquire_custom(pending)
            custom = self._custom
            stream: ReplyStream | None = None
            try:
                stream = await slot.client.open(msg)
                first = await stream.receive()
            except ReplicaUnavailableError as exc:
                first = ErrorReply("unavailable", "ReplicaUnavailable", str(exc))
            except BaseException:
                if stream is not None:
                    stream.cancel()
                self._release(slot)
                raise
            if isinstance(first, ErrorReply) and first.kind == "unavailable":
                last = first
                slot.down_until = time.monotonic() + _DOWN_FOR_S
                self._release(slot)
                if custom is not None:
                    custom.unavailable(slot, connection_lost=first.type_name == "ConnectionLost")
                continue
            assert stream is not None
            if custom is not None and pending is not None:
                return CustomAssignment(self, slot, stream, first, custom, pending)
            return Assignment(self, slot, stream, first)
        assert last is not None
        self.rejected["unavailable"] = self.rejected.get("unavailable", 0) + 1
        raise ReplicaUnavailableError(
            f"no replica of {self.name!r} could take the request after "
            f"{self._max_attempts} attempts: {last.message}"
        )

    def close(self) -> None:
        self._copies.cancel()
        for slot in self._slots.values():
            slot.client.close()
        self._slots.clear()
        self._choices = []
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
