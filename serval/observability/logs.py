"""Logging setup shared by every serval process: one format, the component in each line."""

from __future__ import annotations

import logging
import os
import sys

from serval._env import read_env


def setup_logging(component: str) -> None:
    """Log to stderr as ``time LEVEL (component pid=N) message``."""
    level = read_env().log_level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s ({component} pid={os.getpid()}) %(name)s: %(message)s"
        )
    )
    root = logging.getLogger("serval")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
