"""One deployment's replicas, reconciled towards its target.

The controller calls :meth:`DeploymentState.reconcile` whenever something changed
(a deploy, a replica became ready or died, a health check failed) and on a tick.
Reconcile compares the target (code version, replica count, user_config) with the
replicas there are, and acts:

- too few replicas of the current version → start some;
- replicas of an old version → roll: start a new one (one extra at most, or 20%),
  and for each new replica that is RUNNING stop one old one, so the number of
  serving replicas never drops below the target during an update. Ray Serve's
  ``rolling_update_percentage`` / ``max_surge_percent`` change that when given:
  replace that share of the target at a time, with at most that many extra replicas
  (0%: an old replica stops before its replacement starts);
- too many → stop the surplus (starting ones first);
- a running replica whose user_config is stale → ``reconfigure()`` it in place.

Only RUNNING replicas are published to routers. A replica is unpublished before it
is told to drain, so no router picks it after it stops accepting connections.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serval.config import DeploymentConfig
from serval.controller import routing_stats
from serval.controller.autoscaler import Autoscaler
from serval.controller.publisher import Publisher, deployment_key, fold
from serval.controller.replica import Replica, ReplicaStatus, ReplyError, call, placed
from serval.runtime.base import ProcessHandle, Runtime
from serval.transport.address import dial
from serval.transport.connection import Connection
from serval.transport.messages import (
    CheckHealth,
    DeploymentSpec,
    DeploymentTarget,
    Drain,
    InitReplica,
    ModelDelta,
    Reconfigure,
    ReplicaInfo,
    ReportModels,
    RequestRouterSpec,
)

logger = logging.getLogger("serval.controller")

MAX_START_FAILURES = 3  # per target replica
HEALTH_FAILURE_THRESHOLD = 3


class DeploymentStatus(enum.Enum):
    UPDATING = "UPDATING"  # replicas are starting, stopping or rolling to a new version
    HEALTHY = "HEALTHY"  # the target number of current-version replicas are running
    UNHEALTHY = "UNHEALTHY"  # replicas keep dying or failing health checks
    DEPLOY_FAILED = "DEPLOY_FAILED"  # the current version cannot start (constructor raised)


@dataclass(frozen=True)
class Deps:
    """What a DeploymentState needs from its controller."""

    runtime: Runtime
    publisher: Publisher
    controller_address: str
    wake: Callable[[], None]


def _router_spec(spec: DeploymentSpec, config: DeploymentConfig) -> RequestRouterSpec | None:
    """What routers need to run the deployment's own request router (None: serval's)."""
    cfg = config.request_router_config
    if cfg is None or not spec.request_router:
        return None
    return RequestRouterSpec(
        spec.request_router, cfg.request_router_class, dict(cfg.request_router_kwargs)
    )


class DeploymentState:
    def __init__(
        self,
        app: str,
        spec: DeploymentSpec,
        deps: Deps,
        sys_path: list[str],
        cwd: str,
        is_ingress: bool,
    ) -> None:
        self.app = app
        self.name = spec.name
        self._deps = deps
        self.replicas: dict[str, Replica] = {}
        self.spec = spec
        self.config = DeploymentConfig.model_validate(spec.config)
        self.router_spec = _router_spec(spec, self.config)
        self.target_count = self.config.initial_replica_count()
        self.sys_path, self.cwd, self.is_ingress = sys_path, cwd, is_ingress
        self.autoscaler = (
            Autoscaler(self.config.autoscaling_config)
            if self.config.autoscaling_config is not None
            else None
        )
        self.deleting = False
        self.failures = 0
        self.restarts = 0  # replicas replaced after dying or failing health checks (metrics)
        self.failed = False
        self.message = ""
        self._retry_after = 0.0

    @property
    def key(self) -> str:
        return deployment_key(self.app, self.name)

    # -- targets ------------------------------------------------------------------

    def set_target(
        self, spec: DeploymentSpec, sys_path: list[str], cwd: str, is_ingress: bool
    ) -> None:
        code_changed = spec.code_hash != self.spec.code_hash
        self.spec, self.sys_path, self.cwd, self.is_ingress = spec, sys_path, cwd, is_ingress
        self.config = DeploymentConfig.model_validate(spec.config)
        self.router_spec = _router_spec(spec, self.config)
        asc = self.config.autoscaling_config
        if asc is None:
            self.autoscaler = None
            self.target_count = self.config.initial_replica_count()
        elif self.autoscaler is None:
            self.autoscaler = Autoscaler(asc)
            self.target_count = self.config.initial_replica_count()
        else:
            self.autoscaler.config = asc
            self.target_count = max(asc.min_replicas, min(asc.max_replicas, self.target_count))
        if code_changed:
            self.failures, self.failed, self.message = 0, False, ""
        self.deleting = False

    def set_user_config(self, user_config: Any) -> None:
        config = {**self.spec.config, "user_config": user_config}
        DeploymentConfig.model_validate(config)  # a bad value fails here, not in replicas
        self.spec.config = config
        self.config = DeploymentConfig.model_validate(config)

    def delete(self) -> None:
        self.deleting = True
        self.target_count = 0

    @property
    def gone(self) -> bool:
        return self.deleting and not self.replicas

    # -- status ---------------------------------------------------------------------

    def status(self) -> DeploymentStatus:
        if self.failed:
            return DeploymentStatus.DEPLOY_FAILED
        current = [r for r in self.replicas.values() if r.code_hash == self.spec.code_hash]
        running = sum(r.status is ReplicaStatus.RUNNING for r in current)
        others = len(self.replicas) - len(current)
        stale = any(r.user_config != self.config.user_config for r in current)
        if running == self.target_count and others == 0 and len(current) == running and not stale:
            return DeploymentStatus.HEALTHY
        if self.failures and running < self.target_count:
            return DeploymentStatus.UNHEALTHY
        return DeploymentStatus.UPDATING

    def replica_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.replicas.values():
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        return counts

    # -- reconcile ------------------------------------------------------------------

    def autoscale(self, now: float) -> None:
        if self.autoscaler is None or self.deleting or self.failed:
            return
        desired, reason = self.autoscaler.decide(self.target_count, now)
        if desired != self.target_count:
            logger.info("%s/%s: %s", self.app, self.name, reason)
            self.target_count = desired

    def record_load(self, router_id: str, ongoing: int) -> None:
        if self.autoscaler is not None:
            self.autoscaler.record(router_id, ongoing)
            if self.target_count == 0 and ongoing > 0:
                self._deps.wake()

    def reconcile(self) -> None:
        current = self.spec.code_hash
        live = [r for r in self.replicas.values() if r.status is not ReplicaStatus.STOPPING]
        new = [r for r in live if r.code_hash == current]
        old = [r for r in live if r.code_hash != current]
        for r in old:
            if r.status is ReplicaStatus.STARTING:
                self._stop(r, "its version was replaced before it started")
        old_running = [r for r in old if r.status is ReplicaStatus.RUNNING]
        new_running = [r for r in new if r.status is ReplicaStatus.RUNNING]
        target = self.target_count

        if not self.failed and not self.deleting and time.monotonic() >= self._retry_after:
            for _ in range(self._to_start(target, new, new_running, old_running)):
                self._start()
            old_running = [r for r in old_running if r.status is ReplicaStatus.RUNNING]

        excess = len(new_running) + len(old_running) - target
        for r in old_running[: max(0, excess)] if excess > 0 else []:
            self._stop(r, "replaced by a replica of the new version")
        if self.failed and old_running and not new_running:
            pass  # a failed update keeps the old version serving
        if not old_running:
            surplus = len(new) - target
            for r in sorted(new, key=lambda r: r.status is ReplicaStatus.RUNNING)[
                : max(0, surplus)
            ]:
                self._stop(r, "scaling down")
        self._reconfigure_stale(new_running)
        self.publish()

    def _to_start(
        self, target: int, new: list[Replica], new_running: list[Replica], old: list[Replica]
    ) -> int:
        """How many replicas of the current version to start now; during a rollout with
        ``max_surge_percent`` set, first stops the old replicas that make room."""
        missing = target - len(new)
        if missing <= 0:
            return 0
        if not old:
            return missing
        cfg = self.config
        if cfg.rolling_update_percentage is None and cfg.max_surge_percent is None:
            surge = max(1, math.ceil(0.2 * target))  # serval's zero-downtime default
            return max(0, min(missing, target + surge - len(new) - len(old)))
        batch = max(1, int((cfg.rolling_update_percentage or 0.2) * target))
        surge = math.ceil((cfg.max_surge_percent or 0) * target / 100)
        room = min(missing, batch - (len(new) - len(new_running)))
        if room <= 0:
            return 0
        over = len(new) + len(old) + room - (target + surge)
        for r in old[: max(0, over)]:
            self._stop(r, "rolling update: making room for a replica of the new version")
        return room

    def publish(self) -> None:
        running = [
            ReplicaInfo(
                r.replica_id,
                r.process.address,
                self.config.max_ongoing_requests,
                list(r.model_ids),
                r.node_id,
                r.availability_zone,
                r.routing_stats,
            )
            for r in self.replicas.values()
            if r.status is ReplicaStatus.RUNNING and r.process is not None
        ]
        running.sort(key=lambda i: i.replica_id)
        self._deps.publisher.publish_target(
            self.key,
            DeploymentTarget(
                running,
                self.config.max_queued_requests,
                exists=not self.gone,
                autoscaling=self.autoscaler is not None,
                request_router=self.router_spec,
                **self._backpressure(),
            ),
        )

    def _backpressure(self) -> dict[str, Any]:
        bp = self.config.backpressure_config
        if bp is None:
            return {}
        out: dict[str, Any] = {"overload_status": bp.status_code}
        if bp.retry_after_s is not None:
            out["retry_after_s"] = bp.retry_after_s
        return out

    def _spawn(self, replica: Replica, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        replica.tasks.add(task)
        task.add_done_callback(replica.tasks.discard)

    def _start(self) -> None:
        rid = uuid.uuid4().hex[:8]
        replica = Replica(rid, self.spec.code_hash, user_config=self.config.user_config)
        self.replicas[rid] = replica
        self._spawn(replica, self._run_start(replica))

    def _stop(self, replica: Replica, why: str) -> None:
        if replica.status is ReplicaStatus.STOPPING:
            return
        logger.info(
            "stopping replica %s of %s/%s: %s", replica.replica_id, self.app, self.name, why
        )
        was_running = replica.status is ReplicaStatus.RUNNING
        replica.status = ReplicaStatus.STOPPING
        self._spawn(replica, self._run_stop(replica, graceful=was_running))

    # -- replica lifecycles -------------------------------------------------------------

    def _placement(self) -> dict[str, object]:
        """What the runtime needs to place a replica: ``ray_actor_options`` and the
        placement group options (the local runtime ignores them)."""
        placement: dict[str, object] = dict(self.config.ray_actor_options or {})
        if self.config.placement_group_bundles:
            placement["placement_group_bundles"] = self.config.placement_group_bundles
            placement["placement_group_strategy"] = self.config.placement_group_strategy or "PACK"
        return placement

    async def _run_start(self, replica: Replica) -> None:
        spec = self.spec
        env = {**self.config.env_vars(), "SERVAL_REPLICA_ID": replica.replica_id}
        try:
            proc = await self._deps.runtime.start_replica(
                replica.replica_id,
                env=env,
                resources=self._placement(),
            )
            replica.process = proc
            self._spawn(replica, self._watch_exit(replica, proc))
            replica.conn = await self._dial(proc)
            answer = await call(
                replica.conn,
                InitReplica(
                    replica_id=replica.replica_id,
                    app_name=self.app,
                    deployment_name=self.name,
                    serialized_def=spec.serialized_def,
                    init_payload=spec.init_payload,
                    user_config=replica.user_config,
                    sys_path=self.sys_path,
                    cwd=self.cwd,
                    controller_address=self._deps.controller_address,
                    max_ongoing_requests=self.config.max_ongoing_requests,
                    is_ingress=self.is_ingress,
                    logging_config=spec.config.get("logging_config"),
                ),
                timeout_s=None,
            )
            placed(replica, answer)
        except Exception as exc:
            self._start_failed(replica, exc)
            return
        if replica.status is ReplicaStatus.STARTING:
            replica.status = ReplicaStatus.RUNNING
            replica.last_health_check = time.monotonic()
            self.failures = 0
            logger.info("replica %s of %s/%s is running", replica.replica_id, self.app, self.name)
            self._deps.wake()

    async def adopt(
        self,
        proc: ProcessHandle,
        replica_id: str,
        code_hash: str,
        user_config: Any,
        model_ids: list[str],
    ) -> bool:
        """Take over a running replica a previous controller started (no restart):
        re-connect to it and check its health; False (and killed) when that fails."""
        try:
            conn = await dial(proc.address, timeout_s=5.0)
            answer = await call(conn, CheckHealth(), self.config.health_check_timeout_s)
        except Exception as exc:
            logger.warning("replica %s cannot be adopted (%s); replacing it", replica_id, exc)
            proc.kill()
            return False
        replica = Replica(
            replica_id,
            code_hash,
            ReplicaStatus.RUNNING,
            proc,
            conn,
            user_config,
            model_ids=dict.fromkeys(model_ids),
            last_health_check=time.monotonic(),
        )
        placed(replica, answer)
        self.replicas[replica_id] = replica
        self._spawn(replica, self._watch_exit(replica, proc))
        return True

    async def _dial(self, proc: ProcessHandle) -> Connection:
        delay = 0.005
        while True:
            if proc.exit_code is not None:
                raise RuntimeError(
                    f"replica process exited with code {proc.exit_code} before it listened"
                )
            try:
                return await dial(proc.address, timeout_s=5.0)
            except Exception:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _start_failed(self, replica: Replica, exc: Exception) -> None:
        if replica.status is ReplicaStatus.STOPPING:
            return
        detail = (
            exc.reply.traceback or exc.reply.message
            if isinstance(exc, ReplyError)
            else (f"{type(exc).__name__}: {exc}")
        )
        self.failures += 1
        self.message = (
            f"replica of {self.app}/{self.name} failed to start "
            f"({self.failures} failed start{'s' if self.failures > 1 else ''}; the deployment "
            f"fails after {self._failure_threshold()}):\n{detail}"
        )
        logger.error("%s", self.message)
        if self.failures >= self._failure_threshold() and replica.code_hash == self.spec.code_hash:
            self.failed = True
        self._retry_after = time.monotonic() + min(0.2 * 2**self.failures, 10.0)
        replica.status = ReplicaStatus.STOPPING
        self._spawn(replica, self._run_stop(replica, graceful=False))

    def _failure_threshold(self) -> int:
        """Failed starts before DEPLOY_FAILED: Ray Serve's rule, 3 per target replica
        capped by ``max_constructor_retry_count``."""
        per_replica = MAX_START_FAILURES * max(1, self.target_count)
        return min(self.config.max_constructor_retry_count, per_replica)

    async def _watch_exit(self, replica: Replica, proc: ProcessHandle) -> None:
        code = await proc.wait()
        if replica.status is ReplicaStatus.RUNNING:  # (a STARTING one is counted by _run_start)
            logger.warning(
                "replica %s of %s/%s died (exit code %s); replacing it",
                replica.replica_id,
                self.app,
                self.name,
                code,
            )
            self.failures += 1
            self.restarts += 1
            self._retry_after = time.monotonic() + min(0.05 * 2**self.failures, 5.0)
        self.replicas.pop(replica.replica_id, None)
        if replica.conn is not None:
            replica.conn.close()
        self._deps.wake()

    async def _run_stop(self, replica: Replica, graceful: bool) -> None:
        self.publish()  # unpublish first
        proc = replica.process
        if graceful and replica.conn is not None and not replica.conn.closed:
            # When the deployment is deleted, late routers would fail anyway: no need to
            # wait for them, only for the requests already running.
            wait_loop = 0.0 if self.deleting else self.config.graceful_shutdown_wait_loop_s
            timeout = self.config.graceful_shutdown_timeout_s
            try:
                await call(replica.conn, Drain(wait_loop, timeout), timeout + wait_loop + 5)
            except Exception as exc:
                logger.debug("drain of %s ended: %s", replica.replica_id, exc)
        if proc is not None:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0 if graceful else 0.01)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        else:
            self.replicas.pop(replica.replica_id, None)
            self._deps.wake()

    def _reconfigure_stale(self, running: list[Replica]) -> None:
        wanted = self.config.user_config
        for r in running:
            if r.user_config != wanted and r.conn is not None and not r.reconfiguring:
                r.reconfiguring = True
                self._spawn(r, self._run_reconfigure(r, wanted))

    async def _run_reconfigure(self, replica: Replica, user_config: Any) -> None:
        assert replica.conn is not None
        try:
            await call(replica.conn, Reconfigure(user_config), timeout_s=60)
            replica.user_config = user_config
            replica.reconfiguring = False
            self._deps.wake()
            logger.info("reconfigured replica %s of %s/%s", replica.replica_id, self.app, self.name)
        except Exception as exc:
            self.message = f"reconfigure() of replica {replica.replica_id} failed: {exc}"
            logger.error("%s", self.message)
            self._stop(replica, "reconfigure() failed")
            self._deps.wake()

    # -- health -------------------------------------------------------------------------

    def check_health(self, now: float) -> None:
        period = self.config.health_check_period_s
        for r in list(self.replicas.values()):
            if r.status is ReplicaStatus.RUNNING and now - r.last_health_check >= period:
                r.last_health_check = now
                self._spawn(r, self._run_health_check(r))

    async def _run_health_check(self, replica: Replica) -> None:
        if replica.conn is None:
            return
        try:
            await call(replica.conn, CheckHealth(), self.config.health_check_timeout_s)
            replica.health_failures = 0
        except Exception as exc:
            replica.health_failures += 1
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            logger.warning(
                "health check of replica %s of %s/%s failed (%d/%d): %s",
                replica.replica_id,
                self.app,
                self.name,
                replica.health_failures,
                HEALTH_FAILURE_THRESHOLD,
                reason,
            )
            if replica.health_failures >= HEALTH_FAILURE_THRESHOLD and (
                replica.status is ReplicaStatus.RUNNING
            ):
                replica.status = ReplicaStatus.STOPPING
                self.restarts += 1
                self.publish()
                if replica.process is not None:
                    replica.process.kill()
                self._deps.wake()

    def poll_routing_stats(self, now: float) -> None:
        """Ask the replicas for ``record_routing_stats()`` when due (custom routers only)."""
        cfg = self.config.request_router_config
        if self.router_spec is not None and cfg is not None:
            routing_stats.poll(self, cfg, now)

    def report_models(self, msg: ReportModels) -> bool:
        """Apply a replica's report; False when a change cannot be applied (the replica
        must send all its models again)."""
        replica = self.replicas.get(msg.replica_id)
        if replica is None:
            return True
        if msg.full:
            replica.model_ids = dict.fromkeys(msg.model_ids)
            replica.models_seq = msg.seq
            self.publish()
            return True
        if msg.seq != replica.models_seq + 1:
            return False  # a report was lost, or this controller is new: resync
        replica.models_seq = msg.seq
        fold(replica.model_ids, msg.added, msg.removed)
        delta = ModelDelta(replica.replica_id, list(msg.added), list(msg.removed))
        if replica.status is ReplicaStatus.RUNNING and not self._deps.publisher.publish_models(
            self.key, delta
        ):
            self.publish()
        return True

    def models(self) -> dict[str, list[str]]:
        return {
            r.replica_id: list(r.model_ids)
            for r in self.replicas.values()
            if r.status is ReplicaStatus.RUNNING
        }

    async def model_admin(self, op: str, model_ids: list[str]) -> dict[str, Any]:
        """Run ``op`` on the replicas it concerns: prewarm and pin on the replica the
        routers would pick for the model, evict/unpin/refresh on every replica; an op
        without model ids (``stats``) on every replica."""
        from serval.router.model_choice import rendezvous_order
        from serval.transport.messages import ModelCommand

        running = {
            r.replica_id: r
            for r in self.replicas.values()
            if r.status is ReplicaStatus.RUNNING and r.conn is not None
        }
        if not running:
            raise RuntimeError(f"{self.app}/{self.name} has no running replica")
        targets: dict[str, list[str]] = {} if model_ids else {rid: [] for rid in running}
        for model_id in model_ids:
            holders = [rid for rid, r in running.items() if model_id in r.model_ids]
            if op in ("prewarm", "pin"):
                chosen = holders[:1] or rendezvous_order(model_id, list(running))[:1]
            else:
                chosen = list(running)
            for rid in chosen:
                targets.setdefault(rid, []).append(model_id)
        results: dict[str, Any] = {}
        for rid, ids in targets.items():
            conn = running[rid].conn
            assert conn is not None
            try:
                results[rid] = await call(conn, ModelCommand(op, ids), timeout_s=300)
            except ReplyError as exc:
                results[rid] = {"error": exc.reply.message}
        return results

    def kill_all(self) -> None:
        for r in self.replicas.values():
            if r.process is not None:
                r.process.kill()
