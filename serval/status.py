"""What ``serval.status()`` returns (Ray Serve's shapes and status names)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ApplicationStatus",
    "ApplicationStatusOverview",
    "DeploymentStatus",
    "DeploymentStatusOverview",
    "ProxyStatus",
    "ServeStatus",
]


class ApplicationStatus(str, enum.Enum):
    """An application's state; compares equal to its name (``== "RUNNING"``)."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus(str, enum.Enum):
    """A deployment's state; compares equal to its name (``== "HEALTHY"``)."""

    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


class ProxyStatus(str, enum.Enum):
    """An HTTP proxy's state."""

    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclass
class DeploymentStatusOverview:
    """One deployment in ``serval.status()``: status, replicas by state, message."""

    status: DeploymentStatus
    replica_states: dict[str, int] = field(default_factory=dict)
    message: str = ""
    target_replicas: int = 0


@dataclass
class ApplicationStatusOverview:
    """One application in ``serval.status()``."""

    status: ApplicationStatus
    message: str = ""
    last_deployed_time_s: float = 0.0
    route_prefix: str | None = None
    deployments: dict[str, DeploymentStatusOverview] = field(default_factory=dict)
    canary: dict[str, Any] | None = None  # weight and per-version counts, or why rolled back


@dataclass
class ServeStatus:
    """Example: ``serval.status().applications["app"].status == "RUNNING"``."""

    proxies: dict[str, ProxyStatus] = field(default_factory=dict)
    applications: dict[str, ApplicationStatusOverview] = field(default_factory=dict)
    http_host: str | None = None
    http_port: int | None = None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> ServeStatus:
        apps = {
            name: ApplicationStatusOverview(
                status=ApplicationStatus(a["status"]),
                message=a["message"],
                last_deployed_time_s=a["last_deployed_time_s"],
                route_prefix=a["route_prefix"],
                canary=a.get("canary"),
                deployments={
                    dname: DeploymentStatusOverview(
                        status=DeploymentStatus(d["status"]),
                        replica_states=d["replica_states"],
                        message=d["message"],
                        target_replicas=d["target_replicas"],
                    )
                    for dname, d in a["deployments"].items()
                },
            )
            for name, a in raw["applications"].items()
        }
        info = raw.get("info", {})
        return cls(
            proxies={k: ProxyStatus(v) for k, v in raw["proxies"].items()},
            applications=apps,
            http_host=info.get("http_host"),
            http_port=info.get("http_port"),
        )
