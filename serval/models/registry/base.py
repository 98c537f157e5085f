"""The cold tier: a registry, the source of truth for models and their versions.

A model id names a model and, optionally, which version::

    tenant7                   the latest version
    tenant7@3                 version 3
    tenant7@production        whatever the alias "production" points at
    models:/tenant7/3         the same, MLflow's spelling (also models:/tenant7@production)

:meth:`Registry.resolve` turns an id into a :class:`ModelRef` (a concrete, immutable
version: what caches are keyed on), :meth:`Registry.fetch` returns its
:class:`Artifact` (the model file's bytes). Names are letters, digits, ``.``, ``_`` and
``-`` (not starting with ``.``), so they are safe as directory names.

A registry serves one file per model version. When a version holds several files
(an MLflow model directory, say), :func:`choose_model_file` picks it: the file the
``MLmodel`` flavor names, else the only file with a known model extension, else the
one called ``model.*``.
"""

from __future__ import annotations

import json
import posixpath
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from serval.exceptions import ModelNotFoundError

__all__ = [
    "Artifact",
    "ModelRef",
    "ModelSpec",
    "Registry",
    "choose_model_file",
    "parse_model_id",
    "version_key",
]

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
_SELECTOR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_MLMODEL_FILES = {"sklearn": "pickled_model", "onnx": "data"}  # flavor -> key naming the file
_NOT_MODELS = {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "aliases.json"}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model id: the name, and a version or alias (``None``: the latest)."""

    name: str
    selector: str | None = None


@dataclass(frozen=True, order=True)
class ModelRef:
    """One concrete version of a model; immutable, so safe to cache forever."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Artifact:
    """The file a model version is made of."""

    ref: ModelRef
    filename: str
    data: bytes

    def to_bytes(self) -> bytes:
        """Packed for the warm tier: a length-prefixed JSON header, then the file."""
        header = json.dumps(
            {"name": self.ref.name, "version": self.ref.version, "filename": self.filename}
        ).encode()
        return len(header).to_bytes(4, "big") + header + self.data

    @classmethod
    def from_bytes(cls, payload: bytes | memoryview) -> Artifact:
        """The inverse of :meth:`to_bytes`; ``ValueError`` when ``payload`` is malformed."""
        view = memoryview(payload)
        size = int.from_bytes(view[:4], "big")
        if len(view) < 4 + size:
            raise ValueError("truncated artifact header")
        try:
            header = json.loads(bytes(view[4 : 4 + size]))
            ref = ModelRef(str(header["name"]), str(header["version"]))
            filename = str(header["filename"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"malformed artifact header: {exc}") from None
        return cls(ref, filename, bytes(view[4 + size :]))


def parse_model_id(model_id: str) -> ModelSpec:
    """Split ``model_id`` (see the module docs); :class:`ModelNotFoundError` if malformed."""
    text = model_id
    if text.startswith("models:/"):
        text = text[len("models:/") :]
        name, slash, version = text.partition("/")
        if slash:
            text = f"{name}@{version}"
    name, at, selector = text.partition("@")
    if not _NAME.match(name) or (at and not _SELECTOR.match(selector)):
        raise ModelNotFoundError(
            f"model {model_id!r} does not exist: not a valid model id (expected 'name', "
            "'name@version' or 'name@alias'; names use letters, digits, '.', '_', '-')"
        )
    return ModelSpec(name, selector if at and selector != "latest" else None)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order: ``2 < 10``, ``v1.9 < v1.10``; the last is the latest."""
    parts = re.split(r"(\d+)", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def choose_model_file(ref: ModelRef, files: Iterable[str], mlmodel: bytes | None = None) -> str:
    """Which of a version's ``files`` (relative paths) is the model (module docs)."""
    from serval.models.loaders import EXTENSIONS

    candidates = sorted(
        f for f in files if posixpath.basename(f) not in _NOT_MODELS and not _hidden(f)
    )
    if mlmodel is not None:
        named = _from_mlmodel(mlmodel)
        if named is not None and named in candidates:
            return named
    known = [f for f in candidates if posixpath.splitext(f)[1].lower() in EXTENSIONS]
    for group in (known, candidates):
        if len(group) == 1:
            return group[0]
        preferred = [f for f in group if posixpath.basename(f).startswith("model.")]
        if len(preferred) == 1:
            return preferred[0]
    if not candidates:
        raise FileNotFoundError(f"{ref} has no model file")
    raise FileNotFoundError(
        f"{ref} has several candidate model files {candidates}: keep one, or name it model.<ext>"
    )


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


def _from_mlmodel(mlmodel: bytes) -> str | None:
    try:
        flavors = (yaml.safe_load(mlmodel) or {}).get("flavors", {})
    except yaml.YAMLError:
        return None
    for flavor, key in _MLMODEL_FILES.items():
        value = flavors.get(flavor, {}).get(key) if isinstance(flavors, dict) else None
        if isinstance(value, str):
            return posixpath.normpath(value)
    return None


class Registry(ABC):
    """Where models and their versions live (the cold tier). All methods are async; a
    registry with a blocking client runs it in threads.

    Example (the in-memory fake)::

        registry = MemoryRegistry()
        registry.add("iris", "1", "model.joblib", data)
        ref = await registry.resolve("iris")           # ModelRef("iris", "1")
        artifact = await registry.fetch(ref)
    """

    #: Identifies the registry's contents (its URL): warm-tier keys include it, so
    #: stores reading different registries never share entries.
    identity: str = ""

    @abstractmethod
    async def versions(self, name: str) -> list[str]:
        """The versions of ``name``, oldest first; :class:`ModelNotFoundError` if none."""

    @abstractmethod
    async def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version for ``name`` (empty when it has none)."""

    @abstractmethod
    async def fetch(self, ref: ModelRef) -> Artifact:
        """The artifact of ``ref``; :class:`ModelNotFoundError` if it does not exist."""

    async def resolve(self, model_id: str) -> ModelRef:
        """The concrete version ``model_id`` names; :class:`ModelNotFoundError` naming
        it when the model, version or alias does not exist."""
        spec = parse_model_id(model_id)
        versions = await self.versions(spec.name)
        if spec.selector is None:
            return ModelRef(spec.name, versions[-1])
        if spec.selector in versions:
            return ModelRef(spec.name, spec.selector)
        aliases = await self.aliases(spec.name)
        target = aliases.get(spec.selector)
        if target is None or target not in versions:
            raise ModelNotFoundError(
                f"model {model_id!r} does not exist: {spec.name!r} has no version or alias "
                f"{spec.selector!r} (versions {versions[-5:]}, aliases {sorted(aliases)})"
            )
        return ModelRef(spec.name, target)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"
