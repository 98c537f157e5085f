"""CPU time a server spent: the process and all of its descendants, from ``/proc``.

A serval instance is several processes (driver, supervisor, controller, proxy,
replicas); the CPU seconds they use while serving N requests, over N, is the request
path's cost, a figure far steadier on a noisy VM than req/s (which also moves with what
the neighbours take).
"""

from __future__ import annotations

import os

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and every live descendant (Linux)."""
    parent: dict[int, int] = {}
    spent: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:  # exited meanwhile
            continue
        fields = data.rsplit(b")", 1)[1].split()  # after "pid (comm)": state ppid ...
        pid = int(entry)
        parent[pid] = int(fields[1])
        spent[pid] = (int(fields[11]) + int(fields[12])) * _TICK_S
    total = 0.0
    for pid, seconds in spent.items():
        p = pid
        while p > 1:
            if p == root:
                total += seconds
                break
            p = parent.get(p, 0)
    return total
