"""Every environment variable the model store reads, in one place.

=================================  ===============================================
``SERVAL_MODELS_REGISTRY``         path, fsspec URL, or ``mlflow:<tracking-uri>``
``SERVAL_MODELS_WARM``             ``disk`` (default), ``disk:<dir>``, ``redis://…``,
                                   ``memory``, ``none``
``SERVAL_MODELS_WARM_MAX_BYTES``   the warm tier's budget (``20GiB``)
``SERVAL_MODELS_WARM_POLICY``      the warm tier's eviction policy (``gdsf``)
``SERVAL_MODELS_HMAC_KEY``         the key warm-tier blobs are signed with
``SERVAL_MODELS_LOADER``           force one loader (``joblib``, ``module:func``)
``SERVAL_MODELS_WATCH_INTERVAL_S`` seconds between checks for new versions (``30``)
=================================  ===============================================

Replicas inherit the environment of the process that starts them (or get it from
``ray_actor_options={"runtime_env": {"env_vars": ...}}``), which makes these the way to
configure every replica of a deployment at once.
"""

from __future__ import annotations

import os
from typing import Any

from serval._env import read_env

__all__ = ["default_warm_dir", "store_options_from_env"]

_VARIABLES = {
    "SERVAL_MODELS_REGISTRY": "registry",
    "SERVAL_MODELS_WARM": "warm",
    "SERVAL_MODELS_WARM_MAX_BYTES": "warm_max_bytes",
    "SERVAL_MODELS_WARM_POLICY": "warm_policy",
    "SERVAL_MODELS_HMAC_KEY": "hmac_key",
    "SERVAL_MODELS_LOADER": "loader",
    "SERVAL_MODELS_WATCH_INTERVAL_S": "watch_interval_s",
}


def store_options_from_env() -> dict[str, Any]:
    """The :class:`~serval.models.config.StoreConfig` options set in the environment."""
    return {option: os.environ[var] for var, option in _VARIABLES.items() if os.environ.get(var)}


def default_warm_dir() -> str:
    """Where the default disk warm tier lives: shared by every replica of this machine
    that runs with the same ``SERVAL_HOME``."""
    return os.path.join(read_env().home, "models-warm")
