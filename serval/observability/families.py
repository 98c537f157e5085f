"""Every metric family serval exports: its name, type and help text, in one table.

Labels (``application``, ``deployment``, ``replica``, ``route``, ``method``,
``status_code``, ``model_id``, …) are listed beside each family. Counter names are
given without ``_total`` (prometheus-client adds it when it writes the text).
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["FAMILIES", "OTHER_MODELS", "UNMATCHED_ROUTE", "FamilySpec"]

OTHER_MODELS: Final = "__other__"  # model_id of the models outside the top N
UNMATCHED_ROUTE: Final = "__unmatched__"  # route of requests no route matched (404)


class FamilySpec(NamedTuple):
    kind: str  # counter | gauge | histogram
    help: str


FAMILIES: Final[dict[str, FamilySpec]] = {
    # proxy
    "serval_http_requests": FamilySpec(
        "counter",
        "HTTP requests answered by the proxy "
        "(application, deployment, route, method, status_code).",
    ),
    "serval_http_request_latency_seconds": FamilySpec(
        "histogram", "Time from the request's arrival at the proxy to its answer."
    ),
    "serval_http_request_errors": FamilySpec(
        "counter", "HTTP requests answered with a status code >= 400."
    ),
    "serval_grpc_requests": FamilySpec(
        "counter",
        "gRPC calls answered by the proxy's gRPC ingress "
        "(application, deployment, method, status_code: the gRPC status name).",
    ),
    "serval_grpc_request_latency_seconds": FamilySpec(
        "histogram", "Time from a gRPC call's arrival at the proxy to its last message."
    ),
    "serval_grpc_request_errors": FamilySpec(
        "counter", "gRPC calls answered with a status other than OK."
    ),
    "serval_websocket_open_connections": FamilySpec(
        "gauge", "WebSockets the proxy carries now (application, deployment, route)."
    ),
    "serval_websocket_connections": FamilySpec(
        "counter", "WebSocket handshakes the proxy forwarded to a deployment."
    ),
    "serval_websocket_connection_duration_seconds": FamilySpec(
        "histogram", "How long the proxy's WebSockets stayed open."
    ),
    # routers (proxies and replicas that hold handles)
    "serval_router_queued_requests": FamilySpec(
        "gauge", "Requests waiting in a router's queue for a free replica."
    ),
    "serval_requests_rejected": FamilySpec(
        "counter",
        "Requests refused with 503 (cause: queue_full = max_queued_requests reached, "
        "unavailable = no replica could take it).",
    ),
    "serval_handle_requests": FamilySpec(
        "counter", "Calls made through deployment handles (application, deployment, method)."
    ),
    # replicas
    "serval_replica_processing_latency_seconds": FamilySpec(
        "histogram", "Time a replica spent on a request (route and method, or handle method)."
    ),
    "serval_replica_ongoing_requests": FamilySpec("gauge", "Requests a replica is processing now."),
    "serval_batch_size": FamilySpec("histogram", "Sizes of the batches @serval.batch ran."),
    # every process
    "serval_busy_poll_seconds": FamilySpec(
        "counter",
        "Time the proxy's or a replica's event loop spent polling for the next message "
        "at low load instead of sleeping (SERVAL_BUSY_POLL_US).",
    ),
    "serval_busy_polls": FamilySpec(
        "counter",
        "Busy polls by how they ended (caught: a request arrived or was answered within "
        "the window; expired: the window ran out).",
    ),
    "serval_transport_rejected_peers": FamilySpec(
        "counter",
        "Connections dropped because the peer failed the instance handshake "
        "(wrong or no secret, garbage, silence); nothing they sent was decoded.",
    ),
    # controller
    "serval_deployment_replicas": FamilySpec(
        "gauge", "Replicas of a deployment by state (STARTING, RUNNING, STOPPING)."
    ),
    "serval_deployment_target_replicas": FamilySpec(
        "gauge", "Replicas a deployment should have (the autoscaling decision, when autoscaled)."
    ),
    "serval_replica_restarts": FamilySpec(
        "counter", "Replicas replaced after they died or failed their health checks."
    ),
    "serval_placement_updates": FamilySpec(
        "counter",
        "Updates the controller sent to routers and proxies, by kind (routes and target: "
        "whole values; models: model placement deltas).",
    ),
    "serval_placement_update_bytes": FamilySpec(
        "counter", "Bytes of the updates the controller sent to routers and proxies, by kind."
    ),
    "serval_autoscaling_ongoing_requests": FamilySpec(
        "gauge", "Autoscaling input: ongoing requests (running + queued) routers report now."
    ),
    "serval_autoscaling_target_ongoing_requests": FamilySpec(
        "gauge", "Autoscaling input: target_ongoing_requests per replica."
    ),
    "serval_autoscaling_min_replicas": FamilySpec("gauge", "Autoscaling bound: min_replicas."),
    "serval_autoscaling_max_replicas": FamilySpec("gauge", "Autoscaling bound: max_replicas."),
    # many models (replicas)
    "serval_model_requests": FamilySpec(
        "counter",
        "Requests for a model (hits + misses of the hot tier); per model_id for the top N "
        "models by requests, the rest under model_id='__other__'.",
    ),
    "serval_model_loads": FamilySpec(
        "counter",
        "Model loads by tier and outcome (hot: into a replica's memory, per model_id; "
        "warm: from the shared warm tier; cold: fetched from the registry).",
    ),
    "serval_model_load_latency_seconds": FamilySpec(
        "histogram", "Time a model load took, by tier."
    ),
    "serval_model_cache_hits": FamilySpec(
        "counter", "Requests a tier answered (hot: per model_id; warm: per replica)."
    ),
    "serval_model_cache_misses": FamilySpec(
        "counter", "Requests a tier could not answer (hot: per model_id; warm: per replica)."
    ),
    "serval_model_evictions": FamilySpec("counter", "Models the eviction policy pushed out."),
    "serval_models_loaded": FamilySpec("gauge", "Models in a replica's memory now."),
    "serval_model_cache_bytes": FamilySpec("gauge", "Bytes a tier holds now, by tier."),
    "serval_warm_tier_errors": FamilySpec(
        "counter",
        "Warm-tier trouble (kind: rejected = blob discarded, bad signature or unreadable; "
        "outage = the tier went down).",
    ),
    "serval_model_resident_bytes": FamilySpec(
        "gauge", "Bytes of a model in a replica's memory (top N models; the rest summed)."
    ),
    # every process
    "serval_metrics_scrape_processes": FamilySpec(
        "gauge", "Processes whose metrics this scrape holds, by process kind."
    ),
}
