"""The controller's desired state, saved on every change, so a new controller resumes it.

What is saved: every application's spec (with live ``user_config`` changes, which
live in the spec), which apps are being deleted, each deployment's replica target (the
autoscaler's latest decision), the canaries, and the running replicas (id, version,
address, user_config, models). What is not: in-flight work, autoscaling history,
canary statistics; a new controller starts those afresh.

The models each replica holds change on every load and eviction: a change of those
alone is saved at most every ``MODELS_EVERY_S`` seconds (the rest at once), so model
churn does not rewrite and fsync the checkpoint every tick. A new controller that
restored a placement a few seconds old corrects it from the replicas' next report (its
sequence number no longer follows, so the replica sends all its models).

On start, :meth:`Checkpointer.restore` rebuilds the applications and *adopts* the
recorded replicas through the runtime (on Ray: by their actor names), re-connecting to
each and checking its health before routers hear anything from the new controller, so
their replica sets do not blink. Replicas that are gone are replaced by the first
reconcile, like any replica that died.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from serval.canary import CanaryConfig
from serval.controller.application_state import Application
from serval.controller.canary_state import CanaryState
from serval.controller.replica import ReplicaStatus
from serval.runtime.base import CheckpointStore
from serval.transport.messages import AppSpec

if TYPE_CHECKING:
    from serval.controller.controller import Controller
    from serval.controller.deployment_state import DeploymentState

logger = logging.getLogger("serval.controller")

FORMAT = 1
MODELS_EVERY_S = 5.0


class ReplicaRecord(msgspec.Struct):
    replica_id: str
    code_hash: str
    address: str
    user_config: Any = None
    model_ids: list[str] = []


class DeploymentRecord(msgspec.Struct):
    name: str
    target_count: int
    replicas: list[ReplicaRecord] = []


class AppRecord(msgspec.Struct):
    spec: AppSpec
    deleting: bool = False
    deployments: list[DeploymentRecord] = []


class CanaryRecord(msgspec.Struct):
    app: str
    canary_app: str
    config: dict[str, Any]


class Checkpoint(msgspec.Struct):
    format: int = FORMAT
    apps: list[AppRecord] = []
    canaries: list[CanaryRecord] = []
    rollback_reasons: dict[str, str] = {}


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Checkpoint)


def snapshot(controller: Controller, *, models: bool = True) -> Checkpoint:
    apps = []
    for app in controller.apps.values():
        deployments = [
            DeploymentRecord(
                dep.name,
                dep.target_count,
                [
                    ReplicaRecord(
                        r.replica_id,
                        r.code_hash,
                        r.process.address,
                        r.user_config,
                        list(r.model_ids) if models else [],
                    )
                    for r in dep.replicas.values()
                    if r.status is ReplicaStatus.RUNNING and r.process is not None
                ],
            )
            for dep in app.deployments.values()
        ]
        apps.append(AppRecord(app.spec, app.deleting, deployments))
    canaries = [
        CanaryRecord(c.app, c.canary_app, c.config.model_dump(mode="json"))
        for c in controller.canaries.values()
    ]
    return Checkpoint(FORMAT, apps, canaries, dict(controller.rollback_reasons))


class Checkpointer:
    """Saves the controller's state to ``store`` when it changed; restores it."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self._last = b""
        self._last_without_models = b""
        self._models_saved_at = -float("inf")
        self.error = ""  # why the checkpoint could not be restored, if it could not

    def save(self, controller: Controller) -> None:
        """Save what changed (models: at most every ``MODELS_EVERY_S``; module docs)."""
        without_models = _encoder.encode(snapshot(controller, models=False))
        now = time.monotonic()
        if without_models == self._last_without_models and (
            now - self._models_saved_at < MODELS_EVERY_S
        ):
            return
        self._last_without_models = without_models
        self._models_saved_at = now
        data = _encoder.encode(snapshot(controller))
        if data != self._last:
            self.store.save(data)
            self._last = data

    async def restore(self, controller: Controller) -> int:
        """Rebuild the saved applications and adopt their replicas; returns how many
        replicas were adopted."""
        data = self.store.load()
        if not data:
            await controller.runtime.forget_replicas(set())
            return 0
        try:
            saved = _decoder.decode(data)
            if saved.format != FORMAT:
                raise msgspec.DecodeError(f"format {saved.format}, expected {FORMAT}")
        except msgspec.DecodeError as exc:
            kept = self.store.quarantine()
            self.error = (
                f"the checkpoint {self.store.location} cannot be read ({exc}); it was "
                + (f"kept as {kept}" if kept else "dropped")
                + "; the controller started empty (the replicas it recorded were stopped)"
            )
            logger.error("%s", self.error)
            await controller.runtime.forget_replicas(set())
            return 0
        adoptions = []
        for record in saved.apps:
            app = Application(record.spec, controller.deps)
            controller.apps[app.name] = app
            for drec in record.deployments:
                dep = app.deployments.get(drec.name)
                if dep is not None:
                    dep.target_count = drec.target_count
                    adoptions += [_adopt(controller, dep, r) for r in drec.replicas]
            if record.deleting:
                app.delete()
        adopted = {rid for rid in await asyncio.gather(*adoptions) if rid}
        await controller.runtime.forget_replicas(adopted)
        for c in saved.canaries:
            config = CanaryConfig.model_validate(c.config)
            controller.canaries[c.app] = CanaryState(c.app, c.canary_app, config)
        controller.rollback_reasons.update(saved.rollback_reasons)
        self._last = data
        logger.info(
            "restored %d application(s) from the checkpoint; adopted %d of %d replica(s)",
            len(saved.apps),
            len(adopted),
            len(adoptions),
        )
        return len(adopted)


async def _adopt(controller: Controller, dep: DeploymentState, record: ReplicaRecord) -> str:
    proc = await controller.runtime.adopt_replica(record.replica_id, record.address)
    if proc is None:
        return ""
    ok = await dep.adopt(
        proc, record.replica_id, record.code_hash, record.user_config, record.model_ids
    )
    return record.replica_id if ok else ""
