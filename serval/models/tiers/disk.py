"""The disk backend (the default warm tier): a directory shared by every replica of a
machine, so a model one replica fetched from the registry is a local read for the rest.

Safe with many processes and no lock:

- writes go to a temporary file in the same directory, then ``os.replace`` renames it
  over the final name — atomic on POSIX and Windows, so a reader opens either the old
  blob or the new one, never a partial write;
- a reader that loses a race with a deletion sees "not there" (a miss), never an error;
- a writer that crashed leaves a ``.tmp-*`` file, removed by the next listing once it
  is older than an hour;
- a torn or corrupted file (power loss) fails the warm tier's signature check and is
  discarded.

Blocking file calls run in threads. The directory is created with mode 0700 (only the
user the replicas run as can plant blobs there).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

from serval.models.tiers.base import TierBackend, TierUnavailableError, check_key

__all__ = ["DiskTier"]

_SUFFIX = ".blob"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0


class DiskTier(TierBackend):
    """Blobs as files ``<directory>/<key>.blob``.

    Example::

        tier = DiskTier("/var/cache/serval/models")
    """

    name = "disk"

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(os.path.expanduser(directory))

    def __repr__(self) -> str:
        return f"DiskTier({self.directory!r})"

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, check_key(key) + _SUFFIX)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, self._path(key))

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._delete, self._path(key))

    async def sizes(self) -> dict[str, int]:
        return await asyncio.to_thread(self._sizes)

    def _get(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TierUnavailableError(f"cannot read {path}: {exc}") from exc

    def _put(self, path: str, data: bytes) -> None:
        tmp = os.path.join(self.directory, f"{_TMP_PREFIX}{secrets.token_hex(8)}")
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            _remove(tmp)
            raise TierUnavailableError(f"cannot write {path}: {exc}") from exc

    def _delete(self, path: str) -> bool:
        try:
            os.remove(path)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TierUnavailableError(f"cannot delete {path}: {exc}") from exc

    def _sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        now = time.time()
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue  # deleted by another process while we listed
                    if entry.name.endswith(_SUFFIX):
                        out[entry.name[: -len(_SUFFIX)]] = stat.st_size
                    elif entry.name.startswith(_TMP_PREFIX) and now - stat.st_mtime > _STALE_TMP_S:
                        _remove(entry.path)  # left behind by a writer that crashed
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TierUnavailableError(f"cannot list {self.directory}: {exc}") from exc
        return out


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
