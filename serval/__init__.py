"""serval ("serve all"): serve any Python model or function, one model or thousands.

Ray Serve's public API, so ``import serval as serve`` runs Ray Serve code::

    import serval as serve

    @serve.deployment
    def hello(request):
        return f"Hello {request.query_params['name']}!"

    serve.run(hello.bind(), route_prefix="/hello")
"""

from __future__ import annotations

from serval import exceptions, metrics
from serval.api import (
    RunTarget,
    delete,
    get_app_handle,
    get_deployment_handle,
    list_deployments,
    promote,
    rollback,
    run,
    run_many,
    shutdown,
    shutdown_async,
    start,
    status,
)
from serval.batching import BatchConfig, batch
from serval.canary import CanaryConfig
from serval.config import AutoscalingConfig, BackpressureConfig, DeploymentConfig, HTTPOptions
from serval.context import (
    ReplicaContext,
    get_multiplexed_model_id,
    get_replica_context,
)
from serval.deployment import Application, Deployment, deployment
from serval.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator
from serval.ingress import ingress
from serval.models.multiplexed import multiplexed
from serval.status import ApplicationStatus, DeploymentStatus, ServeStatus

__version__ = "0.1.0"

__all__ = [
    "Application",
    "ApplicationStatus",
    "AutoscalingConfig",
    "BackpressureConfig",
    "BatchConfig",
    "CanaryConfig",
    "Deployment",
    "DeploymentConfig",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "DeploymentStatus",
    "HTTPOptions",
    "ReplicaContext",
    "RunTarget",
    "ServeStatus",
    "__version__",
    "batch",
    "delete",
    "deployment",
    "exceptions",
    "get_app_handle",
    "get_deployment_handle",
    "get_multiplexed_model_id",
    "get_replica_context",
    "ingress",
    "list_deployments",
    "metrics",
    "multiplexed",
    "promote",
    "rollback",
    "run",
    "run_many",
    "shutdown",
    "shutdown_async",
    "start",
    "status",
]
