"""The many-models benchmark's handler code, shared by serval and Ray Serve.

It imports nothing from serval (the Ray Serve peer runs in its own virtualenv): the
tenant helpers are loaded from ``serval/apps/_tenants.py`` by file path.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import joblib

_TENANTS_PATH = Path(__file__).resolve().parent.parent / "serval" / "apps" / "_tenants.py"


def tenants_module() -> Any:
    name = "_serval_bench_tenants"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TENANTS_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def warm_up() -> None:
    """Each replica's constructor, in both systems: import what unpickling a tenant model
    needs, so the first measured requests do not pay for importing scikit-learn."""
    import sklearn.discriminant_analysis  # today's tenants
    import sklearn.linear_model  # noqa: F401 - and those of registries generated before


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.9, 3.1, 5.4, 2.1]]


async def load_tenant(registry: str, model_id: str, fetch_latency_s: float, loads_file: str) -> Any:
    """The loader both systems use: a registry fetch (its latency, as from an object
    store) and a real joblib load; every load is logged to ``loads_file``."""
    await asyncio.sleep(fetch_latency_s)
    obj = await asyncio.to_thread(joblib.load, tenant_file(registry, model_id))
    with open(loads_file, "a") as f:
        f.write(f"{model_id}\n")
    return tenants_module().as_model(obj)


def tenant_file(registry: str, model_id: str) -> str:
    """The tenant's model file: ``model.pkl``, or ``model.joblib`` in a registry generated
    before tenants were plain pickles (joblib.load reads both)."""
    folder = os.path.join(registry, model_id, "1")
    path = os.path.join(folder, tenants_module().MODEL_FILE)
    return path if os.path.exists(path) else os.path.join(folder, "model.joblib")


def score(model: Any) -> list[int]:
    return [int(p) for p in model.predict(ROWS)]
