"""Where replicas and proxies run: the one seam between "what" and "where".

Runtimes are picked by name from :data:`RUNTIMES` (``"module:Class"`` strings), so
importing serval never imports Ray unless the ray runtime is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

from serval.exceptions import ConfigError
from serval.runtime.base import ProcessHandle, Runtime

__all__ = ["RUNTIMES", "ProcessHandle", "Runtime", "load_runtime"]

RUNTIMES: dict[str, str] = {
    "local": "serval.runtime.local:LocalRuntime",
    "ray": "serval.runtime.ray:RayRuntime",
}


def load_runtime(name: str, state_dir: str, **options: Any) -> Runtime:
    try:
        target = RUNTIMES[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; available: {sorted(RUNTIMES)}") from None
    module, _, cls = target.partition(":")
    runtime_cls = getattr(importlib.import_module(module), cls)
    runtime: Runtime = runtime_cls(state_dir, **options)
    return runtime
