"""The supervisor's status file, ``supervisor.json`` in the state directory: what
drivers read when the controller does not answer (``serval status``, serve.status())."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import psutil

STATUS_FILE = "supervisor.json"


def status_path(state_dir: str) -> str:
    return os.path.join(state_dir, STATUS_FILE)


def read_status(state_dir: str) -> dict[str, Any] | None:
    """The supervisor's last status, or None when no supervisor of ``state_dir`` runs."""
    try:
        with open(status_path(state_dir)) as f:
            status: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return None
    pid = int(status.get("pid") or 0)
    if pid <= 0 or not _is_supervisor(pid):
        return None
    return status


def _is_supervisor(pid: int) -> bool:
    try:
        return "serval.controller.supervisor" in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def write_status(state_dir: str, **status: Any) -> None:
    path = status_path(state_dir)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": os.getpid(), "time": time.time(), **status}, f)
    os.replace(tmp, path)
