"""The in-memory registry: the fake unit tests use (and a handy registry for demos).

``fetches`` records every artifact served, so tests can count registry loads.
"""

from __future__ import annotations

from serval.exceptions import ModelNotFoundError
from serval.models.registry.base import Artifact, ModelRef, Registry, parse_model_id, version_key

__all__ = ["MemoryRegistry"]


class MemoryRegistry(Registry):
    """Models held in dicts.

    Example::

        registry = MemoryRegistry()
        registry.add("iris", "1", "model.joblib", joblib_bytes)
        registry.set_alias("iris", "production", "1")
    """

    def __init__(self, identity: str = "memory") -> None:
        self.identity = identity
        self.models: dict[str, dict[str, tuple[str, bytes]]] = {}
        self.alias_table: dict[str, dict[str, str]] = {}
        self.fetches: list[ModelRef] = []

    def add(self, name: str, version: str, filename: str, data: bytes) -> ModelRef:
        parse_model_id(f"{name}@{version}")  # same rules as every registry
        self.models.setdefault(name, {})[version] = (filename, bytes(data))
        return ModelRef(name, version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        if version not in self.models.get(name, {}):
            raise ModelNotFoundError(f"model {name!r} has no version {version!r}")
        self.alias_table.setdefault(name, {})[alias] = version

    async def versions(self, name: str) -> list[str]:
        versions = self.models.get(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} does not exist in {self.identity}")
        return sorted(versions, key=version_key)

    async def aliases(self, name: str) -> dict[str, str]:
        return dict(self.alias_table.get(name, {}))

    async def fetch(self, ref: ModelRef) -> Artifact:
        stored = self.models.get(ref.name, {}).get(ref.version)
        if stored is None:
            raise ModelNotFoundError(f"model {str(ref)!r} does not exist in {self.identity}")
        self.fetches.append(ref)
        return Artifact(ref, stored[0], stored[1])
