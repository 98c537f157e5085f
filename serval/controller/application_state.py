"""Applications: a named group of deployments, one of them the ingress, maybe a route."""

from __future__ import annotations

import enum
import time

from serval.controller.deployment_state import DeploymentState, DeploymentStatus, Deps
from serval.transport.messages import AppSpec, RouteInfo


class ApplicationStatus(enum.Enum):
    DEPLOYING = "DEPLOYING"  # some deployment is still starting or rolling
    RUNNING = "RUNNING"  # every deployment is healthy
    DEPLOY_FAILED = "DEPLOY_FAILED"  # a deployment's current version cannot start
    UNHEALTHY = "UNHEALTHY"  # replicas keep failing after the app was running
    DELETING = "DELETING"  # being torn down


class Application:
    def __init__(self, spec: AppSpec, deps: Deps) -> None:
        self.name = spec.name
        self._deps = deps
        self.spec = spec
        self.deployments: dict[str, DeploymentState] = {}
        self.deleting = False
        self.last_deployed = time.time()
        self.apply(spec)

    def apply(self, spec: AppSpec) -> None:
        if spec.model_routes is None and _same_ingress(self.spec, spec):
            # The ingress publishes its model routes when it starts or reconfigures; an
            # unchanged ingress keeps its replicas, so its table stays in force.
            spec.model_routes = self.spec.model_routes
        self.spec = spec
        self.deleting = False
        self.last_deployed = time.time()
        wanted = {d.name: d for d in spec.deployments}
        for name, state in self.deployments.items():
            if name not in wanted:
                state.delete()
        for name, dspec in wanted.items():
            is_ingress = name == spec.ingress
            current = self.deployments.get(name)
            if current is None:
                self.deployments[name] = DeploymentState(
                    spec.name, dspec, self._deps, spec.sys_path, spec.cwd, is_ingress
                )
            else:
                current.set_target(dspec, spec.sys_path, spec.cwd, is_ingress)

    def delete(self) -> None:
        self.deleting = True
        for state in self.deployments.values():
            state.delete()

    def reconcile(self) -> None:
        for name, state in list(self.deployments.items()):
            state.reconcile()
            if state.gone:
                del self.deployments[name]

    @property
    def gone(self) -> bool:
        return self.deleting and not self.deployments

    def route(self) -> RouteInfo | None:
        if self.deleting or self.spec.route_prefix is None:
            return None
        return RouteInfo(
            self.spec.route_prefix, self.name, self.spec.ingress, models=self.spec.model_routes
        )

    def status(self) -> tuple[ApplicationStatus, str]:
        if self.deleting:
            return ApplicationStatus.DELETING, ""
        statuses = {n: d.status() for n, d in self.deployments.items()}
        failed = [n for n, s in statuses.items() if s is DeploymentStatus.DEPLOY_FAILED]
        if failed:
            return ApplicationStatus.DEPLOY_FAILED, "\n".join(
                self.deployments[n].message for n in failed
            )
        if all(s is DeploymentStatus.HEALTHY for s in statuses.values()):
            return ApplicationStatus.RUNNING, ""
        unhealthy = [n for n, s in statuses.items() if s is DeploymentStatus.UNHEALTHY]
        if unhealthy:
            return ApplicationStatus.UNHEALTHY, "\n".join(
                self.deployments[n].message for n in unhealthy if self.deployments[n].message
            )
        return ApplicationStatus.DEPLOYING, ""


def _same_ingress(old: AppSpec, new: AppSpec) -> bool:
    """Whether ``new`` keeps the ingress replicas of ``old`` as they are (same code and
    arguments, same user_config: neither restarted nor reconfigured)."""
    if old is new or old.ingress != new.ingress:
        return False
    before = next((d for d in old.deployments if d.name == old.ingress), None)
    after = next((d for d in new.deployments if d.name == new.ingress), None)
    return (
        before is not None
        and after is not None
        and before.code_hash == after.code_hash
        and before.config.get("user_config") == after.config.get("user_config")
    )
