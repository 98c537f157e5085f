"""The public API: every name Ray Serve users reach for, and nothing missing."""

from __future__ import annotations

import serval

RAY_SERVE_NAMES = {
    "deployment",
    "run",
    "start",
    "shutdown",
    "status",
    "delete",
    "list_deployments",
    "get_app_handle",
    "get_deployment_handle",
    "get_replica_context",
    "ingress",
    "batch",
    "multiplexed",
    "get_multiplexed_model_id",
    "Application",
    "Deployment",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "HTTPOptions",
    "AutoscalingConfig",
    "BackpressureConfig",
    "RunTarget",
    "run_many",
    "shutdown_async",
}


def test_all_is_sorted_and_complete() -> None:
    assert serval.__all__ == sorted(serval.__all__)
    for name in serval.__all__:
        assert hasattr(serval, name), name


def test_ray_serve_names_are_exported() -> None:
    missing = RAY_SERVE_NAMES - set(serval.__all__)
    assert not missing, f"missing public names: {sorted(missing)}"


def test_public_callables_have_docstrings() -> None:
    for name in serval.__all__:
        obj = getattr(serval, name)
        if callable(obj) and not name.startswith("_"):
            assert obj.__doc__, f"serval.{name} has no docstring"


RAY_REQUEST_ROUTER_NAMES = {
    "FIFOMixin",
    "LocalityMixin",
    "MultiplexMixin",
    "PendingRequest",
    "ReplicaID",
    "ReplicaResult",
    "RequestRouter",
    "RunningReplica",
}


def test_request_router_module_has_ray_serves_names() -> None:
    import serval.config
    import serval.request_router as rr

    assert rr.__all__ == sorted(rr.__all__)
    missing = RAY_REQUEST_ROUTER_NAMES - set(rr.__all__)
    assert not missing, f"missing from serval.request_router: {sorted(missing)}"
    for name in rr.__all__:
        assert getattr(rr, name).__doc__, f"serval.request_router.{name} has no docstring"
    assert "RequestRouterConfig" in serval.config.__all__
