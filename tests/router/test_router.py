"""The router's choices, queue, backpressure and retries, against in-memory replicas."""

from __future__ import annotations

import asyncio

import pytest

from serval.exceptions import BackPressureError, NotFoundError, ReplicaUnavailableError
from serval.router.replica_client import FakeReplicaClient, ReplicaClient
from serval.router.router import Router
from serval.transport.messages import (
    Call,
    CallResult,
    DeploymentTarget,
    ErrorReply,
    Message,
    ModelCommand,
    ModelDelta,
    Ok,
    ReplicaInfo,
    Update,
)


def target(*ids: str, max_ongoing: int = 2, max_queued: int = -1) -> DeploymentTarget:
    return DeploymentTarget([ReplicaInfo(i, f"fake:{i}", max_ongoing) for i in ids], max_queued)


class Replicas:
    """Fake replicas that answer when released, so tests control in-flight counts."""

    def __init__(self) -> None:
        self.clients: dict[str, FakeReplicaClient] = {}
        self.dead: set[str] = set()

    def factory(self, address: str) -> ReplicaClient:
        rid = address.split(":", 1)[1]

        def answer(msg: Message) -> list[Message]:
            if rid in self.dead:
                return [ErrorReply("unavailable", "ConnectionLost", f"{rid} is dead")]
            return [CallResult(rid.encode())]

        client = self.clients[rid] = FakeReplicaClient(answer)
        return client


def call() -> Call:
    return Call("__call__", b"")


async def test_spreads_load_and_releases() -> None:
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    router.update(target("a", "b"))
    seen = set()
    for _ in range(50):
        a = await router.assign(call())
        assert isinstance(a.first, CallResult)
        seen.add(a.first.payload)
    assert seen == {b"a", b"b"}
    assert router.in_flight == 0


async def test_waits_when_full_and_backpressure_when_queue_full() -> None:
    release = asyncio.Event()

    class Slow(ReplicaClient):
        async def open(self, msg: Message):  # type: ignore[no-untyped-def]
            await release.wait()
            return await FakeReplicaClient(lambda m: [CallResult(b"ok")]).open(msg)

        def close(self) -> None:
            pass

    router = Router("app/d", lambda addr: Slow())
    router.update(target("a", max_ongoing=1, max_queued=1))
    first = asyncio.ensure_future(router.assign(call()))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(router.assign(call()))  # queued
    await asyncio.sleep(0)
    assert router.queued == 1
    with pytest.raises(BackPressureError, match="max_queued_requests=1"):
        await router.assign(call())
    release.set()
    assert isinstance((await first).first, CallResult)
    assert isinstance((await second).first, CallResult)
    assert router.queued == 0 and router.in_flight == 0


async def test_requests_wait_for_the_first_replicas() -> None:
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    pending = asyncio.ensure_future(router.assign(call()))
    await asyncio.sleep(0.01)
    assert not pending.done()
    router.update(target("a"))
    assert (await asyncio.wait_for(pending, 1)).first == CallResult(b"a")


async def test_retries_on_an_unavailable_replica() -> None:
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    router.update(target("a", "b"))
    fakes.dead.add("a")
    for _ in range(20):
        assert (await router.assign(call())).first == CallResult(b"b")
    fakes.dead.add("b")
    with pytest.raises(ReplicaUnavailableError, match="3 attempts"):
        await asyncio.wait_for(router.assign(call()), 10)


async def test_unknown_deployment_is_not_found_and_removed_replicas_close() -> None:
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    router.update(target("a"))
    router.update(target("b"))
    assert fakes.clients["a"].closed
    assert router.replica_ids == ["b"]
    router.update(DeploymentTarget([], -1, exists=False))
    with pytest.raises(NotFoundError, match="app/d"):
        await router.assign(call())


def test_rendezvous_order_is_stable_and_spreads_models() -> None:
    from serval.router.model_choice import rendezvous_order

    ids = ["r1", "r2", "r3"]
    assert rendezvous_order("m1", ids) == rendezvous_order("m1", list(reversed(ids)))
    firsts = {rendezvous_order(f"m{i}", ids)[0] for i in range(100)}
    assert firsts == set(ids)


async def test_model_requests_stick_to_one_replica_then_to_holders() -> None:
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    router.update(target("a", "b", "c", max_ongoing=10))
    cold = [
        (await router.assign(Call("__call__", b"", model_id="m7"))).replica_id for _ in range(30)
    ]
    assert len(set(cold)) == 1, "a cold model must go to one replica, not several"
    # The controller reports replica "c" holds m7 now: requests follow the holder.
    infos = [ReplicaInfo(i, f"fake:{i}", 10, ["m7"] if i == "c" else []) for i in "abc"]
    router.update(DeploymentTarget(infos, -1))
    router._recent.clear()
    held = {
        (await router.assign(Call("__call__", b"", model_id="m7"))).replica_id for _ in range(20)
    }
    assert held == {"c"}


class Gate(ReplicaClient):
    """A replica whose replies wait for ``release``; remembers which requests it got.
    A prewarm (``ModelCommand``, a background copy) is noted as ``"<rid>:prewarm"`` and
    answers "loaded" once ``warmed`` is set (at once when there is none)."""

    def __init__(
        self, rid: str, release: asyncio.Event, got: list[str], warmed: asyncio.Event | None = None
    ) -> None:
        self.rid = rid
        self.release = release
        self.got = got
        self.warmed = warmed

    async def open(self, msg: Message):  # type: ignore[no-untyped-def]
        if isinstance(msg, ModelCommand):
            self.got.append(f"{self.rid}:prewarm")
            if self.warmed is not None:
                await self.warmed.wait()
            outcome = {"cache": {m: "loaded" for m in msg.model_ids}}
            return await FakeReplicaClient(lambda m: [Ok(outcome)]).open(msg)
        self.got.append(self.rid)
        await self.release.wait()
        return await FakeReplicaClient(lambda m: [CallResult(self.rid.encode())]).open(msg)

    def close(self) -> None:
        pass


async def test_a_hot_model_gets_a_second_copy_only_when_its_holder_is_full() -> None:
    """A full holder with idle replicas beside it: the model is copied to one of them in
    the background while requests wait for the warm holder; once the copy is loaded,
    they go there."""
    release, warmed = asyncio.Event(), asyncio.Event()
    got: list[str] = []
    router = Router("app/d", lambda addr: Gate(addr.split(":", 1)[1], release, got, warmed))
    infos = [ReplicaInfo(i, f"fake:{i}", 2, ["hot"] if i == "a" else []) for i in "abc"]
    router.update(DeploymentTarget(infos, -1))

    def model_call() -> Call:
        return Call("__call__", b"", model_id="hot")

    pending = [asyncio.ensure_future(router.assign(model_call())) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert got == ["a", "a"]  # the holder takes requests while it has room
    pending.append(asyncio.ensure_future(router.assign(model_call())))
    await asyncio.sleep(0.01)
    assert len(got) == 3 and got[2] in ("b:prewarm", "c:prewarm")  # copied in the background
    assert router.queued == 1  # the request waits for a warm replica, not for a load
    copy = got[2].split(":")[0]
    warmed.set()
    await asyncio.sleep(0.01)
    assert got[3:] == [copy] and router.queued == 0  # loaded: the copy takes the request
    assert router._holders["hot"] == {"a", copy}
    release.set()
    for p in pending:
        (await p).close()
    assert router.in_flight == 0


async def test_a_busy_holder_copies_its_model_to_an_idle_replica_not_a_busy_one() -> None:
    """A hot model whose holder has COPY_AT requests while another replica idles gets a
    copy there (before the holder is full, in the background: the holder keeps taking
    requests until the copy is loaded); with every replica busy it stays put."""
    from serval.router.model_choice import COPY_AT

    release, warmed = asyncio.Event(), asyncio.Event()
    got: list[str] = []
    router = Router("app/d", lambda addr: Gate(addr.split(":", 1)[1], release, got, warmed))
    infos = [ReplicaInfo(i, f"fake:{i}", 100, ["hot"] if i == "a" else []) for i in "ab"]
    router.update(DeploymentTarget(infos, -1))

    def assign(model: str) -> asyncio.Future[object]:
        return asyncio.ensure_future(router.assign(Call("__call__", b"", model_id=model)))

    pending = [assign("hot") for _ in range(COPY_AT)]
    await asyncio.sleep(0.01)
    assert got == ["a"] * COPY_AT  # below COPY_AT the holder takes them all
    pending += [assign("hot"), assign("hot")]
    await asyncio.sleep(0.01)
    assert sorted(got[COPY_AT:]) == ["a", "a", "b:prewarm"]  # copied to idle "b", once
    warmed.set()
    await asyncio.sleep(0.01)
    pending.append(assign("hot"))
    await asyncio.sleep(0.01)
    assert got[-1] == "b"  # loaded there: "b" is a holder and the least loaded one
    # Another router where "b" is busy with another model: "hot" stays on its holder.
    from serval.router.model_choice import rendezvous_order

    other = next(
        m for m in (f"m{i}" for i in range(100)) if rendezvous_order(m, ["a", "b"])[0] == "b"
    )
    got2: list[str] = []
    router2 = Router("app/d", lambda addr: Gate(addr.split(":", 1)[1], release, got2))
    router2.update(DeploymentTarget(infos, -1))
    others = [asyncio.ensure_future(router2.assign(Call("__call__", b"", model_id=other)))]
    await asyncio.sleep(0.01)
    assert got2 == ["b"]
    hot = [
        asyncio.ensure_future(router2.assign(Call("__call__", b"", model_id="hot")))
        for _ in range(COPY_AT + 2)
    ]
    await asyncio.sleep(0.01)
    assert got2[1:] == ["a"] * (COPY_AT + 2)
    release.set()
    for p in [*pending, *others, *hot]:
        (await p).close()  # type: ignore[attr-defined]
    assert router.in_flight == 0 and router2.in_flight == 0


async def test_a_copy_that_fails_to_load_leaves_requests_on_the_holder() -> None:
    """A background copy whose load fails (or is not kept) adds no holder: the requests
    go on waiting for the warm holder and are served there."""
    release = asyncio.Event()
    got: list[str] = []

    class Failing(Gate):
        async def open(self, msg: Message):  # type: ignore[no-untyped-def]
            if isinstance(msg, ModelCommand):
                self.got.append(f"{self.rid}:prewarm")
                answer = ErrorReply("error", "ServalError", "no room")
                return await FakeReplicaClient(lambda m: [answer]).open(msg)
            return await super().open(msg)

    router = Router("app/d", lambda addr: Failing(addr.split(":", 1)[1], release, got))
    infos = [ReplicaInfo(i, f"fake:{i}", 1, ["hot"] if i == "a" else []) for i in "ab"]
    router.update(DeploymentTarget(infos, -1))
    first = asyncio.ensure_future(router.assign(Call("__call__", b"", model_id="hot")))
    second = asyncio.ensure_future(router.assign(Call("__call__", b"", model_id="hot")))
    await asyncio.sleep(0.01)
    assert got == ["a", "b:prewarm"] and router._holders["hot"] == {"a"}
    release.set()
    (await first).close()
    assignment = await second
    assert assignment.replica_id == "a"
    assignment.close()


async def test_models_of_a_dead_replica_re_home_without_errors() -> None:
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    infos = [ReplicaInfo(i, f"fake:{i}", 10, ["m1", "m2"] if i == "a" else []) for i in "abc"]
    router.update(DeploymentTarget(infos, -1))
    fakes.dead.add("a")  # died before the controller noticed: requests are retried elsewhere
    for model in ("m1", "m2"):
        answers = [
            (await router.assign(Call("__call__", b"", model_id=model))).first for _ in range(5)
        ]
        assert answers and all(isinstance(a, CallResult) and a.payload != b"a" for a in answers)
    # The controller replaces it; the models' new homes are where rendezvous hashing says.
    router.update(DeploymentTarget([i for i in infos if i.replica_id != "a"], -1))
    again = {
        (await router.assign(Call("__call__", b"", model_id="m1"))).replica_id for _ in range(5)
    }
    assert len(again) == 1 and again <= {"b", "c"}


async def test_placement_deltas_move_a_models_requests() -> None:
    """The controller sends placement changes as deltas; routing follows them."""
    fakes = Replicas()
    router = Router("app/d", fakes.factory)
    router.on_update(Update("deployment:app/d", 1, target=target("a", "b", "c", max_ongoing=10)))
    router.on_update(Update("k", 2, models=ModelDelta("b", ["m1", "m2"], [])))
    router._recent.clear()
    assert {(await router.assign(Call("__call__", b"", model_id="m1"))).replica_id} == {"b"}
    router.on_update(Update("k", 3, models=ModelDelta("b", [], ["m1"])))
    router.on_update(Update("k", 4, models=ModelDelta("a", ["m1"], [])))
    router._recent.clear()
    held = {
        (await router.assign(Call("__call__", b"", model_id="m1"))).replica_id for _ in range(10)
    }
    assert held == {"a"}
    assert router._holders == {"m1": {"a"}, "m2": {"b"}}
    router.on_update(Update("k", 5, models=ModelDelta("b", [], ["m2"])))
    assert "m2" not in router._holders  # nothing left behind for models no one holds


async def test_where_cold_models_went_is_forgotten_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream of ids each asked for once (100,000 tenants) must not pile up in the
    router: a cold model's first replica is remembered ~10 s, then dropped."""
    import serval.router.router as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    router = Router("app/d", Replicas().factory)
    router.update(target("a", "b", max_ongoing=10))
    for i in range(500):
        assignment = await router.assign(Call("__call__", b"", model_id=f"m{i}"))
        assignment.close()
    assert len(router._recent) == 500  # all within the window: all remembered
    now[0] += 11.0
    first = await router.assign(Call("__call__", b"", model_id="m0"))  # still sticks...
    first.close()
    assert len(router._recent) == 1  # ...and the expired ones are gone
    again = await router.assign(Call("__call__", b"", model_id="m0"))
    assert again.replica_id == first.replica_id
    again.close()
