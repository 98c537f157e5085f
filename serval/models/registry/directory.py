"""A registry in a directory tree: a local path or any fsspec URL (s3://, gs://, …).

Layout::

    <root>/<name>/<version>/<model file>     e.g. models/iris/3/model.joblib
    <root>/<name>/aliases.json               optional: {"production": "3"}

The latest version is the greatest in natural order (``10`` after ``9``). Publish a
version by writing it under a temporary name and renaming the directory into place,
so no replica reads half of it. fsspec is synchronous; calls run in threads.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from typing import Any

from serval.exceptions import ModelNotFoundError
from serval.models.registry.base import (
    Artifact,
    ModelRef,
    Registry,
    choose_model_file,
    parse_model_id,
    version_key,
)

__all__ = ["DirectoryRegistry"]

_ALIASES = "aliases.json"


class DirectoryRegistry(Registry):
    """Models under ``url``: a path or an fsspec URL; ``storage_options`` go to fsspec.

    Example::

        registry = DirectoryRegistry("s3://acme-models/prod", storage_options={"anon": False})
    """

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.identity = url
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/") or "/"

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    async def versions(self, name: str) -> list[str]:
        parse_model_id(name)
        return await asyncio.to_thread(self._versions, name)

    async def aliases(self, name: str) -> dict[str, str]:
        return await asyncio.to_thread(self._aliases, name)

    async def fetch(self, ref: ModelRef) -> Artifact:
        return await asyncio.to_thread(self._fetch, ref)

    def _versions(self, name: str) -> list[str]:
        try:
            listing = self.fs.ls(self._path(name), detail=True)
        except FileNotFoundError:
            listing = []
        versions = [
            posixpath.basename(entry["name"].rstrip("/"))
            for entry in listing
            if entry.get("type") == "directory"
        ]
        versions = [v for v in versions if not v.startswith(".")]
        if not versions:
            self._check_reachable()
            raise ModelNotFoundError(f"model {name!r} does not exist in {self.identity}")
        return sorted(versions, key=version_key)

    def _check_reachable(self) -> None:
        """A missing model is "not found" only while the registry itself is there: a
        root that is gone (unmounted, moved, a bucket unreachable) is an outage."""
        try:
            there = self.fs.isdir(self.root)
        except OSError as exc:
            raise OSError(f"registry {self.identity} is unreachable: {exc}") from None
        if not there:
            raise OSError(f"registry {self.identity} is unreachable: its root does not exist")

    def _aliases(self, name: str) -> dict[str, str]:
        path = self._path(name, _ALIASES)
        try:
            raw = self.fs.cat_file(path)
        except FileNotFoundError:
            return {}
        try:
            table = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(table, dict):
            raise ValueError(f"{path} must hold a JSON object of alias -> version")
        return {str(k): str(v) for k, v in table.items()}

    def _fetch(self, ref: ModelRef) -> Artifact:
        folder = self._path(ref.name, ref.version)
        try:
            listing = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            self._check_reachable()
            raise ModelNotFoundError(
                f"model {str(ref)!r} does not exist in {self.identity}"
            ) from None
        files = [
            posixpath.basename(e["name"].rstrip("/")) for e in listing if e.get("type") == "file"
        ]
        mlmodel = (
            self.fs.cat_file(self._path(ref.name, ref.version, "MLmodel"))
            if ("MLmodel" in files)
            else None
        )
        chosen = choose_model_file(ref, files, mlmodel)
        return Artifact(ref, chosen, self.fs.cat_file(posixpath.join(folder, chosen)))
