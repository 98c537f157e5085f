"""A user's request router inside serval's router, against in-memory replicas."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import cloudpickle
import pytest

from serval.exceptions import BackPressureError
from serval.request_router import (
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)
from serval.router.replica_client import FakeReplicaClient, ReplicaClient
from serval.router.router import Router
from serval.transport.messages import (
    Call,
    CallResult,
    DeploymentTarget,
    HttpRequest,
    ModelDelta,
    ReplicaInfo,
    RequestRouterSpec,
    StreamItem,
)
from tests.router.test_router import Replicas, call


class Last(RequestRouter):
    """Always the replica with the highest id; records what it was told."""

    def initialize_state(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.events: list[tuple[str, Any]] = []

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        assert pending_request is not None
        self.events.append(("choose", sorted(r.replica_id.unique_id for r in candidate_replicas)))
        return [[max(candidate_replicas, key=lambda r: r.replica_id.unique_id)]]

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any
    ) -> None:
        self.events.append(("routed", replica_id.unique_id))

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        self.events.append(("completed", replica_id.unique_id))


class Raising(RequestRouter):
    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        raise RuntimeError("router bug")


class Flat(RequestRouter):
    """Returns a flat list (a common mistake): treated as a failure."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        return candidate_replicas  # type: ignore[return-value]


class OnlyB(RequestRouter):
    """Ranks replica "b" alone, even when it has no room (the request must wait)."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        return [[r for r in candidate_replicas if r.replica_id.unique_id == "b"]]


class Groups(RequestRouter):
    """Two groups: "c" first, then "a" and "b"; the first with room wins."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        return [
            [by_id[i] for i in ("c",) if i in by_id],
            [by_id[i] for i in ("a", "b") if i in by_id],
        ]


class Holding(Replicas):
    """Replicas whose first reply is a stream item: the request holds its slot until
    ``close()``."""

    def factory(self, address: str) -> ReplicaClient:
        rid = address.split(":", 1)[1]
        client = self.clients[rid] = FakeReplicaClient(lambda m: [StreamItem(rid.encode())])
        return client


def target(
    router: type[RequestRouter] | None, *ids: str, max_ongoing: int = 2, **kwargs: Any
) -> DeploymentTarget:
    spec = (
        RequestRouterSpec(cloudpickle.dumps(router), f"tests:{router.__name__}", kwargs)
        if router is not None
        else None
    )
    infos = [ReplicaInfo(i, f"fake:{i}", max_ongoing) for i in ids]
    return DeploymentTarget(infos, -1, request_router=spec)


def user(router: Router) -> Any:
    assert router._custom is not None
    return router._custom.user


async def test_the_user_router_chooses_and_its_hooks_run_in_order() -> None:
    router = Router("app/d", Replicas().factory)
    router.update(target(Last, "a", "b", "c", threshold=3))
    assert user(router).kwargs == {"threshold": 3}
    for _ in range(5):
        a = await router.assign(call())
        assert a.first == CallResult(b"c")
    events = user(router).events
    assert events[:3] == [("choose", ["a", "b", "c"]), ("routed", "c"), ("completed", "c")]
    assert router.in_flight == 0


async def test_a_full_replica_is_no_candidate_and_groups_are_tried_in_order() -> None:
    router = Router("app/d", Holding().factory)
    router.update(target(Groups, "a", "b", "c", max_ongoing=1))
    held = []
    for expected in (b"c", b"a", b"b"):  # c first; when c is full, the least busy of a, b
        a = await router.assign(Call("__call__", b"", stream=True))
        held.append(a)
        assert a.first == StreamItem(expected)
    waiting = asyncio.ensure_future(router.assign(call()))
    await asyncio.sleep(0.05)
    assert not waiting.done() and router.queued == 1  # nobody has room: it queues
    held[0].close()
    assert (await waiting).first == StreamItem(b"c")


async def test_a_chosen_replica_without_room_makes_the_request_wait_for_it() -> None:
    router = Router("app/d", Holding().factory)
    router.update(target(OnlyB, "a", "b", max_ongoing=1))
    first = await router.assign(Call("__call__", b"", stream=True))
    assert first.first == StreamItem(b"b")
    waiting = asyncio.ensure_future(router.assign(call()))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # "a" has room, but the router wants "b"
    first.close()
    assert (await waiting).first == StreamItem(b"b")


async def test_a_raising_router_falls_back_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    router = Router("app/d", Replicas().factory)
    router.update(target(Raising, "a", "b"))
    with caplog.at_level(logging.ERROR, logger="serval.router"):
        for _ in range(10):
            a = await router.assign(call())
            assert isinstance(a.first, CallResult)
    lines = [r for r in caplog.records if "choose_replicas raised RuntimeError" in r.getMessage()]
    assert len(lines) == 1
    assert router._custom is not None and router._custom.failures == {"choose_replicas": 10}


async def test_a_malformed_answer_counts_as_a_failure() -> None:
    router = Router("app/d", Replicas().factory)
    router.update(target(Flat, "a", "b"))
    a = await router.assign(call())
    assert isinstance(a.first, CallResult)
    assert router._custom is not None and router._custom.failures == {"choose_replicas": 1}


async def test_a_router_that_cannot_be_loaded_leaves_serval_choosing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = Router("app/d", Replicas().factory)
    broken = target(None, "a", "b")
    broken.request_router = RequestRouterSpec(b"not a pickle", "gone:Router")
    with caplog.at_level(logging.ERROR, logger="serval.router"):
        router.update(broken)
        router.update(broken)  # the same spec again: not retried, not logged again
    assert router._custom is None
    assert sum("gone:Router" in r.getMessage() for r in caplog.records) == 1
    assert isinstance((await router.assign(call())).first, CallResult)


async def test_the_queue_bound_holds_for_user_routers() -> None:
    router = Router("app/d", Holding().factory)
    spec = target(Last, "a", max_ongoing=1)
    spec.max_queued_requests = 1
    router.update(spec)
    held = await router.assign(Call("__call__", b"", stream=True))
    queued = asyncio.ensure_future(router.assign(call()))
    await asyncio.sleep(0.01)
    with pytest.raises(BackPressureError):
        await router.assign(call())
    held.close()
    assert (await queued).first == StreamItem(b"a")


async def test_the_pending_request_carries_the_call_and_models_follow_deltas() -> None:
    class Record(Last):  # pickled by value, as a driver ships it: state on the instance
        async def choose_replicas(
            self,
            candidate_replicas: list[RunningReplica],
            pending_request: PendingRequest | None = None,
        ) -> list[list[RunningReplica]]:
            assert pending_request is not None
            self.events.append(("choose", pending_request))
            return [[r for r in candidate_replicas if "m1" in r.multiplexed_model_ids]]

    from serval.transport.codec import dumps

    router = Router("app/d", Replicas().factory)
    router.update(target(Record, "a", "b"))
    router.apply_models(ModelDelta("b", ["m1"], []))
    a = await router.assign(Call("predict", dumps(((1, 2), {"k": 3})), model_id="m1"))
    assert a.first == CallResult(b"b")
    seen = [e[1] for e in user(router).events if e[0] == "choose"]
    pr = seen[0]
    assert (pr.args, pr.kwargs) == ([1, 2], {"k": 3})
    meta = pr.metadata
    assert (meta.call_method, meta.multiplexed_model_id, meta.app_name) == ("predict", "m1", "app")
    http = HttpRequest("GET", "/x/y", b"", [], b"")
    router.apply_models(ModelDelta("b", [], ["m1"]))
    router.apply_models(ModelDelta("a", ["m1"], []))
    assert (await router.assign(http)).first == CallResult(b"a")
    seen = [e[1] for e in user(router).events if e[0] == "choose"]
    assert seen[1].metadata.route == "/x/y" and seen[1].metadata.is_http_request
    assert seen[1].args == []


async def test_unreachable_replicas_reach_the_hooks_and_the_request_goes_elsewhere() -> None:
    fakes = Replicas()
    fakes.dead.add("b")

    class Hooks(Last):
        def on_replica_actor_unavailable(self, replica_id: ReplicaID) -> None:
            self.events.append(("unavailable", replica_id.unique_id))

    router = Router("app/d", fakes.factory)
    router.update(target(Hooks, "a", "b"))
    a = await router.assign(call())
    assert a.first == CallResult(b"a")  # "b" was chosen first, then skipped as down
    assert ("unavailable", "b") in user(router).events


async def test_replacing_the_router_config_swaps_the_instance() -> None:
    router = Router("app/d", Replicas().factory)
    router.update(target(Last, "a", "b", k=1))
    first = router._custom
    router.update(target(Last, "a", "b", "c", k=1))  # same spec: same instance, new replicas
    assert router._custom is first
    assert set(user(router).curr_replicas) == {ReplicaID(i, "d", "app") for i in "abc"}
    router.update(target(Last, "a", "b", k=2))
    assert router._custom is not first and user(router).kwargs == {"k": 2}
    router.update(target(None, "a", "b"))
    assert router._custom is None
    assert isinstance((await router.assign(call())).first, CallResult)


async def test_requests_sent_before_the_first_update_use_the_user_router() -> None:
    router = Router("app/d", Replicas().factory)
    early = [asyncio.ensure_future(router.assign(call())) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert router.queued == 3
    router.update(target(Last, "a", "b", "c", max_ongoing=5))
    assert [(await e).first for e in early] == [CallResult(b"c")] * 3
    assert [e for e in user(router).events if e[0] == "routed"] == [("routed", "c")] * 3
