"""The controller's checkpoint against the in-memory store: what is saved, when, and what a
new controller rebuilds from it. (Adopting real replicas is tested on Ray, in
tests/runtime/test_ray_fault_tolerance.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from serval.canary import CanaryConfig
from serval.controller.application_state import Application
from serval.controller.canary_state import CanaryState
from serval.controller.checkpoint import Checkpointer
from serval.controller.controller import Controller
from serval.controller.replica import Replica, ReplicaStatus
from serval.runtime.base import MemoryCheckpointStore, ProcessHandle, Runtime
from serval.transport.messages import AppSpec, DeploymentSpec


class NoRuntime(Runtime):
    """Starts nothing; remembers which replicas a restore asked to forget."""

    name = "none"

    def __init__(self) -> None:
        self.kept: set[str] | None = None

    async def start_replica(
        self, replica_id: str, *, env: dict[str, str], resources: dict[str, object]
    ) -> ProcessHandle:
        raise AssertionError("a restore must not start replicas")

    async def start_proxy(
        self,
        name: str,
        args: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        node: str = "",
        http: tuple[str, int] = ("", 0),
    ) -> ProcessHandle:
        raise AssertionError("no proxies here")

    async def forget_replicas(self, keep: set[str]) -> None:
        self.kept = keep

    async def shutdown(self) -> None:
        pass


def _spec(name: str, user_config: object = None) -> AppSpec:
    config = {"num_replicas": 2, "user_config": user_config}
    deployment = DeploymentSpec("D", b"code", b"args", config, code_hash="h1")
    return AppSpec(name, f"/{name}", "D", [deployment], sys_path=["/app"], cwd="/app")


async def _controller(store: MemoryCheckpointStore) -> Controller:
    return Controller("tcp:127.0.0.1:1", NoRuntime(), None, {}, Checkpointer(store))


def test_saved_state_is_rebuilt_by_a_new_controller() -> None:
    async def scenario() -> None:
        store = MemoryCheckpointStore()
        first = await _controller(store)
        first.apps["shop"] = Application(_spec("shop"), first.deps)
        first.apps["shop"].deployments["D"].set_user_config({"tag": "live"})
        first.apps["shop"].deployments["D"].target_count = 5  # the autoscaler's decision
        first.apps["old"] = Application(_spec("old"), first.deps)
        first.apps["old"].delete()
        first.canaries["shop"] = CanaryState("shop", "shop@canary", CanaryConfig(weight=0.2))
        assert first.checkpoint is not None
        first.checkpoint.save(first)
        first.checkpoint.save(first)  # unchanged: not written again
        assert store.saves == 1

        second = await _controller(store)
        assert second.checkpoint is not None
        assert await second.checkpoint.restore(second) == 0  # no replicas were recorded
        shop = second.apps["shop"]
        assert shop.spec.route_prefix == "/shop" and shop.spec.sys_path == ["/app"]
        assert shop.deployments["D"].config.user_config == {"tag": "live"}
        assert shop.deployments["D"].target_count == 5
        assert second.apps["old"].deleting
        assert second.canaries["shop"].config.weight == 0.2
        assert isinstance(second.runtime, NoRuntime) and second.runtime.kept == set()

    asyncio.run(scenario())


def test_an_empty_store_restores_nothing() -> None:
    async def scenario() -> None:
        controller = await _controller(MemoryCheckpointStore())
        assert controller.checkpoint is not None
        assert await controller.checkpoint.restore(controller) == 0
        assert controller.apps == {}

    asyncio.run(scenario())


def test_model_churn_alone_is_saved_at_most_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Placement changes on every load and eviction: it must not rewrite (and fsync) the
    checkpoint every tick; anything else is saved at once."""
    import serval.controller.checkpoint as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])

    async def scenario() -> None:
        store = MemoryCheckpointStore()
        controller = await _controller(store)
        controller.apps["shop"] = Application(_spec("shop"), controller.deps)
        dep = controller.apps["shop"].deployments["D"]
        process = SimpleNamespace(address="a")  # all a checkpoint reads of a process
        replica = Replica("r1", "h1", ReplicaStatus.RUNNING, process)  # type: ignore[arg-type]
        dep.replicas["r1"] = replica
        checkpoint = controller.checkpoint
        assert checkpoint is not None
        checkpoint.save(controller)
        assert store.saves == 1
        for i in range(10):  # ten ticks of churn within a second
            replica.model_ids = {f"m{i}": None}
            now[0] += 0.1
            checkpoint.save(controller)
        assert store.saves == 1
        now[0] += module.MODELS_EVERY_S
        checkpoint.save(controller)
        assert store.saves == 2  # the placement, a few seconds late
        dep.target_count = 3  # not placement: saved at once
        checkpoint.save(controller)
        assert store.saves == 3

        second = await _controller(store)
        assert second.checkpoint is not None
        saved = module._decoder.decode(store.load())
        (record,) = saved.apps[0].deployments[0].replicas
        assert record.model_ids == ["m9"]

    asyncio.run(scenario())


def test_model_routes_survive_a_restart_and_an_unchanged_redeploy() -> None:
    """The ingress' model routing table (SetModelRoutes) lives in the app's spec: a new
    controller routes with it, a redeploy that keeps the ingress keeps it, and one that
    changes the ingress drops it (the new ingress publishes its own)."""
    from serval.transport.messages import ModelCanaryRoute, ModelRoutes, SetModelRoutes

    async def scenario() -> None:
        store = MemoryCheckpointStore()
        first = await _controller(store)
        first.apps["mm"] = Application(_spec("mm"), first.deps)
        routes = ModelRoutes(
            "oip_infer_rest", {"shared": "S", "gold": "G"}, "shared", {"t1": "gold"},
            {"t2": ModelCanaryRoute("2", 0.5, None)},
        )  # fmt: skip
        await first._on_model_routes(SetModelRoutes("mm", routes))
        assert [r.models for r in first._routes()] == [routes]
        with pytest.raises(Exception, match="'nope' does not exist"):
            await first._on_model_routes(SetModelRoutes("nope", routes))

        second = await _controller(store)
        assert second.checkpoint is not None
        await second.checkpoint.restore(second)
        assert second.apps["mm"].route() is not None
        assert second.apps["mm"].route().models == routes  # type: ignore[union-attr]
        second.apps["mm"].apply(_spec("mm"))  # the same ingress again
        assert second.apps["mm"].spec.model_routes == routes
        second.apps["mm"].apply(_spec("mm", user_config={"mapping": {}}))  # a new one
        assert second.apps["mm"].spec.model_routes is None

    asyncio.run(scenario())
