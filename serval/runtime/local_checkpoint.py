"""The local runtime's checkpoint store: one file in the state directory.

Each save replaces the file atomically (a temporary file beside it, fsync'd, renamed
over it, and the directory fsync'd), so a crash at any point leaves either the old
checkpoint or the new one, never a torn one. A file that cannot be read anyway is
renamed aside (``<file>.corrupt-<time>``) for inspection, and the controller starts empty.
"""

from __future__ import annotations

import os
import time

from serval.runtime.base import CheckpointStore


class FileCheckpointStore(CheckpointStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self.location = path

    def load(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def save(self, data: bytes) -> None:
        tmp = f"{self.path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(os.path.dirname(self.path) or ".")

    def quarantine(self) -> str | None:
        aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return None
        _fsync_dir(os.path.dirname(self.path) or ".")
        return aside


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
