"""Every message that crosses a process boundary, as typed msgspec structs.

A frame carries one message; the struct's integer tag says which. Structs are
``array_like`` so the encoding is a compact msgpack array. Arbitrary Python values
(handle arguments, results, exceptions) travel as pickled ``bytes`` fields.

Direction of each message:

- router  → replica:    HttpRequest, Call, Cancel
- replica → router:     HttpResponse | HttpResponseStart, BodyChunk*, StreamEnd;
                        CallResult | StreamItem*, StreamEnd; ErrorReply
- controller → replica: InitReplica, Reconfigure, CheckHealth, Drain, GetReplicaStats,
                        GetRoutingStats
- any → controller:     DeployApps, DeleteApps, GetStatus, WaitApps, ListDeployments,
                        GetInfo, Shutdown, Subscribe (answered by a stream of Update),
                        RoutesApplied (from proxies)
- replies to control:   Ok, ErrorReply
"""

from __future__ import annotations

from typing import Any

import msgspec

Headers = list[tuple[bytes, bytes]]


class _Msg(msgspec.Struct, array_like=True, omit_defaults=False, tag_field="t"):
    pass


# ---- data plane -----------------------------------------------------------------


class HttpRequest(_Msg, tag=1):
    method: str
    path: str
    query_string: bytes
    headers: Headers
    body: bytes
    root_path: str = ""
    scheme: str = "http"
    http_version: str = "1.1"
    client_host: str = ""
    client_port: int = 0
    request_id: str = ""
    model_id: str = ""


class HttpResponse(_Msg, tag=2):
    """A complete response in one frame (the common, fast case)."""

    status: int
    headers: Headers
    body: bytes


class HttpResponseStart(_Msg, tag=3):
    """The head of a streamed response; BodyChunk frames and a StreamEnd follow."""

    status: int
    headers: Headers


class BodyChunk(_Msg, tag=4):
    data: bytes


class StreamEnd(_Msg, tag=5):
    pass


class Call(_Msg, tag=6):
    """A handle call: ``payload`` is the pickled ``(args, kwargs)``."""

    method: str
    payload: bytes
    model_id: str = ""
    stream: bool = False
    request_id: str = ""
    trace: str = ""  # the caller's W3C traceparent when tracing is on


class CallResult(_Msg, tag=7):
    payload: bytes


class StreamItem(_Msg, tag=8):
    payload: bytes


class ErrorReply(_Msg, tag=9):
    """Something failed. ``kind`` picks the serval exception; ``payload`` may hold the
    pickled original exception so a handle caller can see it."""

    kind: str
    type_name: str
    message: str
    traceback: str = ""
    payload: bytes = b""


class Cancel(_Msg, tag=10):
    pass


# ---- WebSockets: one stream per socket, frames both ways -------------------------
# The proxy opens the stream with WsConnect; the replica answers WsAccept (or WsClose to
# refuse). Then WsData flows both ways on that stream; WsClose from either side ends it.


class WsConnect(_Msg, tag=60):
    path: str
    query_string: bytes
    headers: Headers
    root_path: str = ""
    scheme: str = "ws"
    http_version: str = "1.1"
    client_host: str = ""
    client_port: int = 0
    subprotocols: list[str] = msgspec.field(default_factory=list)
    request_id: str = ""
    model_id: str = ""


class WsAccept(_Msg, tag=61):
    subprotocol: str | None = None
    headers: Headers = msgspec.field(default_factory=list)


class WsData(_Msg, tag=62):
    """One message: ``text`` for a text frame, else ``data`` (bytes)."""

    text: str | None = None
    data: bytes | None = None


class WsClose(_Msg, tag=63):
    code: int = 1000
    reason: str = ""


class WsCredit(_Msg, tag=64):
    """Flow control: the receiver has taken ``n`` more WsData off its queue, so the
    sender may send ``n`` more (each side starts with ``WS_WINDOW``)."""

    n: int


WS_WINDOW = 64  # WsData one side may send before the other has taken them


# ---- control plane: controller → replica -----------------------------------------


class InitReplica(_Msg, tag=20):
    replica_id: str
    app_name: str
    deployment_name: str
    serialized_def: bytes
    init_payload: bytes
    user_config: Any
    sys_path: list[str]
    cwd: str
    controller_address: str
    max_ongoing_requests: int
    is_ingress: bool = False
    logging_config: dict[str, Any] | None = None  # the deployment's LoggingConfig


class Reconfigure(_Msg, tag=21):
    user_config: Any


class CheckHealth(_Msg, tag=22):
    pass


class Drain(_Msg, tag=23):
    wait_loop_s: float
    timeout_s: float


class GetReplicaStats(_Msg, tag=24):
    pass


class GetRoutingStats(_Msg, tag=26):
    """controller → replica: call the deployment's ``record_routing_stats()`` (custom
    request routers read the dict it returns as ``RunningReplica.routing_stats``)."""


class Ok(_Msg, tag=25):
    value: Any = None


# ---- control plane: anyone → controller -------------------------------------------


class DeploymentSpec(msgspec.Struct):
    name: str
    serialized_def: bytes
    init_payload: bytes
    config: dict[str, Any]
    code_hash: str
    is_function: bool = False
    request_router: bytes = b""  # the pickled request_router_config class (b"": serval's)


class ModelCanaryRoute(msgspec.Struct, array_like=True):
    """A per-model canary: ``weight`` of a model's requests load ``name@version``, the
    rest ``name@stable`` (None: the latest version)."""

    version: str
    weight: float
    stable: str | None = None


class ModelRoutes(msgspec.Struct, array_like=True):
    """A many-models ingress' routing table, published for the proxies
    (:class:`SetModelRoutes`): the proxy sends OIP v2 infer calls straight to the
    deployment that serves the model (``method`` on it, model-aware), skipping the
    ingress hop; the ingress stays the authority and answers everything else."""

    method: str  # the serving deployment's method that answers (oip_infer_rest)
    deployments: dict[str, str]  # pool -> the deployment that serves it
    default: str  # the pool of models the mapping sends nowhere else
    mapping: dict[str, str] = {}  # model name or fnmatch pattern -> pool
    canaries: dict[str, ModelCanaryRoute] = {}
    grpc_method: str = ""  # answers gRPC ModelInfer calls as bytes (oip_infer_grpc); "": none


class AppSpec(msgspec.Struct):
    name: str
    route_prefix: str | None
    ingress: str
    deployments: list[DeploymentSpec]
    sys_path: list[str] = []
    cwd: str = ""
    import_path: str = ""  # set when deployed from a config file
    model_routes: ModelRoutes | None = None  # published by the ingress (SetModelRoutes)


class DeployApps(_Msg, tag=30):
    apps: list[AppSpec]


class DeleteApps(_Msg, tag=31):
    names: list[str]
    wait: bool = True


class GetStatus(_Msg, tag=32):
    pass


class WaitApps(_Msg, tag=33):
    names: list[str]
    timeout_s: float


class ListDeployments(_Msg, tag=34):
    pass


class GetInfo(_Msg, tag=35):
    pass


class Shutdown(_Msg, tag=36):
    pass


class Subscribe(_Msg, tag=37):
    keys: list[str]


class CanaryRoute(msgspec.Struct, array_like=True):
    app: str
    deployment: str
    weight: float
    sticky_header: str = ""
    shadow: bool = False


class RouteInfo(msgspec.Struct, array_like=True):
    prefix: str
    app: str
    deployment: str
    canary: CanaryRoute | None = None
    models: ModelRoutes | None = None  # OIP infer calls the proxy routes itself


class ReplicaInfo(msgspec.Struct, array_like=True):
    replica_id: str
    address: str
    max_ongoing_requests: int
    model_ids: list[str] = []  # models the replica holds or is loading (multiplexing)
    node_id: str = ""  # the machine (on Ray: the Ray node) the replica runs on
    availability_zone: str | None = None
    routing_stats: dict[str, Any] = {}  # its record_routing_stats() (custom request routers)


class RequestRouterSpec(msgspec.Struct, array_like=True):
    """A deployment's own request router (``request_router_config``): the class, pickled
    by value in the driver so routers need not import the user's module."""

    serialized_class: bytes
    class_path: str  # how the user named it (for messages)
    kwargs: dict[str, Any] = {}  # request_router_kwargs, for initialize_state()


class DeploymentTarget(msgspec.Struct, array_like=True):
    """What routers need to know about a deployment: its replicas and queue limit."""

    replicas: list[ReplicaInfo]
    max_queued_requests: int
    exists: bool = True
    autoscaling: bool = False  # routers report their load when set
    overload_status: int = 503  # backpressure_config: what a full queue answers
    retry_after_s: float = 1.0
    request_router: RequestRouterSpec | None = None  # None: serval's own choice


class ModelDelta(msgspec.Struct, array_like=True):
    """What changed in one replica's models (controller → routers)."""

    replica_id: str
    added: list[str]
    removed: list[str]


class Update(_Msg, tag=38):
    key: str
    version: int
    routes: list[RouteInfo] | None = None
    target: DeploymentTarget | None = None
    models: ModelDelta | None = None  # a change of placement only (the target stands)


class RoutesApplied(_Msg, tag=39):
    """A proxy tells the controller it now routes with this version of the table."""

    proxy: str
    version: int


class ReportModels(_Msg, tag=40):
    """A replica tells the controller which models it holds or is loading: all of them
    (``full``), or what changed since its report ``seq - 1``. The controller answers
    ``{"resync": True}`` when it cannot apply a change (it missed one, or restarted);
    the replica then sends all of them."""

    app: str
    deployment: str
    replica_id: str
    model_ids: list[str]
    added: list[str] = msgspec.field(default_factory=list)
    removed: list[str] = msgspec.field(default_factory=list)
    full: bool = True
    seq: int = 0


class ReportLoad(_Msg, tag=41):
    """A router's ongoing requests (running + queued) for one deployment (autoscaling)."""

    app: str
    deployment: str
    router_id: str
    ongoing: int


class SetCanary(_Msg, tag=42):
    app: str
    canary_app: str
    config: dict[str, Any]


class EndCanary(_Msg, tag=43):
    """Promote the canary (it replaces the stable version) or roll it back."""

    app: str
    promote: bool


class ReportTraffic(_Msg, tag=44):
    """A proxy's counts for one version of a canaried app since its last report."""

    app: str
    version: str  # "stable" or "canary"
    requests: int
    errors: int
    latencies_ms: list[float]


class SetUserConfig(_Msg, tag=45):
    """Change one deployment's user_config: its replicas reconfigure() in place."""

    app: str
    deployment: str
    user_config: Any


class ListModels(_Msg, tag=46):
    """Which replica holds which model, for every deployment that reports models."""


class ModelAdmin(_Msg, tag=47):
    """Ask a deployment's replicas to prewarm, pin, unpin, evict or refresh models."""

    app: str
    deployment: str
    op: str
    model_ids: list[str]


class ModelCommand(_Msg, tag=48):
    """controller → replica: run one model-admin operation on this replica's cache."""

    op: str
    model_ids: list[str]


class SetModelRoutes(_Msg, tag=49):
    """ingress replica → controller: the application's model routing table (None: none);
    answered once every proxy routes with it."""

    app: str
    routes: ModelRoutes | None


class CollectMetrics(_Msg, tag=90):
    """Ask a process for its metrics: a replica answers ``Ok(bytes)`` (an encoded
    :class:`serval.observability.snapshot.Snapshot`); the controller answers
    ``Ok(list[bytes])``, its own and those of the replicas that answered within
    ``timeout_s`` (a proxy's scrape of ``/-/metrics``)."""

    timeout_s: float = 1.0


Message = (
    HttpRequest
    | HttpResponse
    | HttpResponseStart
    | BodyChunk
    | StreamEnd
    | Call
    | CallResult
    | StreamItem
    | ErrorReply
    | Cancel
    | WsConnect
    | WsAccept
    | WsData
    | WsClose
    | WsCredit
    | InitReplica
    | Reconfigure
    | CheckHealth
    | Drain
    | GetReplicaStats
    | GetRoutingStats
    | Ok
    | DeployApps
    | DeleteApps
    | GetStatus
    | WaitApps
    | ListDeployments
    | GetInfo
    | Shutdown
    | Subscribe
    | Update
    | RoutesApplied
    | ReportModels
    | ReportLoad
    | SetCanary
    | EndCanary
    | ReportTraffic
    | SetUserConfig
    | ListModels
    | ModelAdmin
    | ModelCommand
    | SetModelRoutes
    | CollectMetrics
)

# Replies that end a stream: after one of these the stream id is free again.
FINAL = (HttpResponse, StreamEnd, CallResult, ErrorReply, Ok, WsClose)
