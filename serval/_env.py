"""Every environment variable serval reads, in one place."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

# The descriptor of a pipe holding the instance secret (a number, never the secret):
# set by the parent of a replica, proxy or controller (serval/_secret.py).
SECRET_FD_VAR = "SERVAL_SECRET_FD"

# How long the proxy and replicas poll for the next message before they sleep, at low
# load (serval/transport/busy_poll.py).
DEFAULT_BUSY_POLL_US = 500


@dataclass(frozen=True)
class Env:
    home: str
    namespace: str
    log_level: str
    runtime: str
    ray_address: str
    admin_token: str
    metrics: bool  # SERVAL_METRICS=0: no request-path metrics, /-/metrics answers 404
    metrics_top_models: int  # per-model series for this many models; the rest aggregated
    logging_config: str  # JSON of a LoggingConfig: serval.start(logging_config=...)
    log_max_bytes: int  # a log file rotates past this size
    log_backup_count: int  # rotated files kept per process
    tracing: str  # the instance's tracing_config as JSON ("" when off)
    node_id: str  # the Ray node a ray-runtime process runs on ("" elsewhere: serval/_node.py)
    availability_zone: str  # that node's ray.io/availability-zone label ("" unknown)
    busy_poll_us: int  # SERVAL_BUSY_POLL_US: see serval/transport/busy_poll.py (0: off)


def default_home() -> str:
    """``$XDG_RUNTIME_DIR/serval`` (per user, private, cleaned at logout) when the
    session has one, else ``/tmp/serval-$UID`` (checked for its owner: see _statedir)."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime_dir and os.path.isabs(runtime_dir):
        return os.path.join(runtime_dir, "serval")
    return os.path.join(tempfile.gettempdir(), f"serval-{os.getuid()}")


def read_env() -> Env:
    """Read the environment now (tests change it between instances)."""
    return Env(
        home=os.environ.get("SERVAL_HOME") or default_home(),
        namespace=os.environ.get("SERVAL_NAMESPACE", "default"),
        log_level=os.environ.get("SERVAL_LOG_LEVEL", "INFO").upper(),
        runtime=os.environ.get("SERVAL_RUNTIME", "local"),
        ray_address=os.environ.get("SERVAL_RAY_ADDRESS", ""),
        admin_token=os.environ.get("SERVAL_ADMIN_TOKEN", ""),
        metrics=os.environ.get("SERVAL_METRICS", "1").strip().lower() not in ("0", "false", "off"),
        metrics_top_models=_top_models(os.environ.get("SERVAL_METRICS_TOP_MODELS", ""), 100),
        logging_config=os.environ.get("SERVAL_LOGGING_CONFIG", ""),
        log_max_bytes=int(os.environ.get("SERVAL_LOG_MAX_BYTES", str(64 * 1024 * 1024))),
        log_backup_count=int(os.environ.get("SERVAL_LOG_BACKUP_COUNT", "5")),
        tracing=os.environ.get("SERVAL_TRACING", ""),
        node_id=os.environ.get("SERVAL_NODE_ID", ""),
        availability_zone=os.environ.get("SERVAL_AVAILABILITY_ZONE", ""),
        busy_poll_us=_whole("SERVAL_BUSY_POLL_US", DEFAULT_BUSY_POLL_US, 1_000_000),
    )


def _top_models(text: str, default: int) -> int:
    if not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"SERVAL_METRICS_TOP_MODELS={text!r}: expected an integer >= 0")
    return value


def _whole(name: str, default: int, most: int) -> int:
    """The variable ``name`` as a whole number in ``[0, most]`` (unset or blank: ``default``)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= most:
        raise ValueError(f"{name}={text!r}: expected a whole number from 0 to {most}")
    return value


def take_secret_fd() -> int:
    """The secret pipe our parent gave us (-1: none); removed from the environment, so
    that processes this one starts do not inherit a stale descriptor number."""
    value = os.environ.pop(SECRET_FD_VAR, "")
    return int(value) if value.isdigit() else -1
