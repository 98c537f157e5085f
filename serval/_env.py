"""Every environment variable serval reads, in one place."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass


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


def read_env() -> Env:
    """Read the environment now (tests change it between instances)."""
    default_home = os.path.join(tempfile.gettempdir(), f"serval-{os.getuid()}")
    return Env(
        home=os.environ.get("SERVAL_HOME", default_home),
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
