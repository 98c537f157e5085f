"""Reading the instance's log files: what ``serval logs`` prints.

Files are ``<logs_dir>/controller.log``, ``proxy*.log`` and ``replica_<id>.log`` (rotated
copies ``.log.1``... are left out). Lines of several files are merged in time order; a
traceback stays with the line it belongs to. ``follow`` keeps printing what is appended,
picks up replicas that start later, and reopens a file that was rotated.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from serval.exceptions import NotFoundError

FOLLOW_POLL_S = 0.2

_TIME = re.compile(r'^(?:\{"asctime": ")?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})')


def select(directory: str, replica: str | None = None, component: str | None = None) -> list[str]:
    """The log files to show: one replica's (by id or id prefix), one component's
    (``controller``, ``proxy``, ``replica``), or all."""
    if not os.path.isdir(directory):
        raise NotFoundError(f"no logs at {directory} (is serval running on this machine?)")
    files = sorted(glob.glob(os.path.join(directory, "*.log")))
    if replica is not None:
        wanted = replica.rsplit("#", 1)[-1]
        mine = [f for f in files if os.path.basename(f).startswith(f"replica_{wanted}")]
        if not mine:
            known = [os.path.basename(f)[8:-4] for f in files if "replica_" in f]
            raise NotFoundError(f"no log of replica {replica!r} in {directory}; replicas: {known}")
        return mine
    if component is not None:
        return [f for f in files if os.path.basename(f).startswith(component)]
    return files


@dataclass
class _Tail:
    path: str
    position: int = 0
    inode: int = 0
    partial: str = field(default="")

    def read_new(self) -> list[str]:
        """Complete lines appended since the last read (from the start after a rotation)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if st.st_ino != self.inode or st.st_size < self.position:
            self.inode, self.position, self.partial = st.st_ino, 0, ""
        if st.st_size == self.position:
            return []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            f.seek(self.position)
            data = f.read()
            self.position = f.tell()
        text = self.partial + data
        lines = text.split("\n")
        self.partial = lines.pop()
        return lines


def _entries(lines: list[str]) -> list[tuple[str, str]]:
    """(time, text) per log record; continuation lines (tracebacks) join their record."""
    out: list[tuple[str, str]] = []
    for line in lines:
        m = _TIME.match(line)
        if m is None and out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        else:
            out.append((m.group(1) if m else "", line))
    return out


def read(files: list[str], last: int | None = None) -> tuple[list[str], dict[str, _Tail]]:
    """The records of ``files`` in time order (the ``last`` ones when given), and the
    positions to follow from."""
    tails = {path: _Tail(path) for path in files}
    entries: list[tuple[str, str]] = []
    for tail in tails.values():
        entries += _entries(tail.read_new())
    entries.sort(key=lambda e: e[0])
    texts = [text for _, text in entries]
    return (texts[-last:] if last else texts), tails


def follow(
    tails: dict[str, _Tail],
    pick: Callable[[], list[str]],
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[str]:
    """Records appended to the followed files (and to files ``pick`` finds later)."""
    while not stop():
        try:
            for path in pick():
                if path not in tails:
                    tails[path] = _Tail(path)
        except NotFoundError:
            pass
        entries: list[tuple[str, str]] = []
        for tail in tails.values():
            entries += _entries(tail.read_new())
        entries.sort(key=lambda e: e[0])
        for _, text in entries:
            yield text
        if not entries:
            time.sleep(FOLLOW_POLL_S)
