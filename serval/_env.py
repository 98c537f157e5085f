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
    )
