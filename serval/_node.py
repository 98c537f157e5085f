"""Which node this process runs on (request routers' locality: ``RunningReplica.node_id``).

On the ray runtime serval's processes are told their Ray node (``SERVAL_NODE_ID``, set
by their Ray host actor), and a driver connected to Ray asks Ray; anywhere else the
node is the machine, named by its host name.
"""

from __future__ import annotations

import socket
import sys

from serval._env import read_env


def this_node() -> tuple[str, str | None]:
    """``(node_id, availability_zone)`` of this process."""
    env = read_env()
    if env.node_id:
        return env.node_id, env.availability_zone or None
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ctx = ray.get_runtime_context()
        try:
            zone = ctx.get_node_labels().get("ray.io/availability-zone")
        except Exception:  # older Ray: no node labels
            zone = None
        return str(ctx.get_node_id()), zone if isinstance(zone, str) and zone else None
    return f"host:{socket.gethostname()}", None
