"""The MLflow model registry (through mlflow-skinny's ``MlflowClient``).

``tenant7`` is the latest READY version, ``tenant7@3`` (or ``models:/tenant7/3``) version
3, ``tenant7@champion`` (or ``models:/tenant7@champion``) the version the registry alias
points at. Artifacts are downloaded with ``mlflow.artifacts`` from wherever the version's
source lives (local, S3, an MLflow server's proxied store); for an MLflow model directory
the file its ``MLmodel`` flavor names (``sklearn``: the pickle; ``onnx``: the .onnx) is
the model.

Configure with ``SERVAL_MODELS_REGISTRY=mlflow:<tracking-uri>``, e.g.
``mlflow:http://mlflow:5000`` or ``mlflow:sqlite:////srv/mlflow.db`` (a SQL store needs
``sqlalchemy`` and ``alembic`` next to mlflow-skinny). The client is synchronous; calls
run in threads. mlflow's errors are translated here: "does not exist" becomes
:class:`~serval.exceptions.ModelNotFoundError`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from serval.exceptions import ModelNotFoundError
from serval.models.registry.base import (
    Artifact,
    ModelRef,
    Registry,
    choose_model_file,
    parse_model_id,
)

__all__ = ["MLflowRegistry"]

T = TypeVar("T")
_READY = "READY"
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST",)
# Every MLflow store answers an unknown alias with INVALID_PARAMETER_VALUE.
_ALIAS_NOT_FOUND = (*_NOT_FOUND, "INVALID_PARAMETER_VALUE")


class MLflowRegistry(Registry):
    """Models registered in MLflow.

    Example::

        registry = MLflowRegistry("http://mlflow:5000")
        await registry.resolve("models:/churn@champion")   # ModelRef("churn", "7")
    """

    def __init__(self, tracking_uri: str, *, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.identity = f"mlflow:{self.registry_uri}"
        self._client: Any = None

    def _mlflow(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    async def _call(
        self, what: str, fn: Callable[[], T], not_found: tuple[str, ...] = _NOT_FOUND
    ) -> T:
        from mlflow.exceptions import MlflowException

        try:
            return await asyncio.to_thread(fn)
        except MlflowException as exc:
            if exc.error_code in not_found:
                raise ModelNotFoundError(
                    f"model {what!r} does not exist in {self.identity}"
                ) from None
            raise

    async def resolve(self, model_id: str) -> ModelRef:
        spec = parse_model_id(model_id)
        client = self._mlflow()
        if spec.selector is None:
            return ModelRef(spec.name, (await self.versions(spec.name))[-1])
        if spec.selector.isdigit():
            found = await self._call(
                model_id, lambda: client.get_model_version(spec.name, spec.selector)
            )
        else:
            found = await self._call(
                model_id,
                lambda: client.get_model_version_by_alias(spec.name, spec.selector),
                not_found=_ALIAS_NOT_FOUND,
            )
        return ModelRef(spec.name, str(found.version))

    async def versions(self, name: str) -> list[str]:
        parse_model_id(name)
        client = self._mlflow()
        found = await self._call(name, lambda: client.search_model_versions(f"name='{name}'"))
        versions = sorted(int(v.version) for v in found if v.status == _READY)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no READY version in {self.identity}")
        return [str(v) for v in versions]

    async def aliases(self, name: str) -> dict[str, str]:
        client = self._mlflow()
        model = await self._call(name, lambda: client.get_registered_model(name))
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    async def fetch(self, ref: ModelRef) -> Artifact:
        client = self._mlflow()
        uri = await self._call(
            str(ref), lambda: client.get_model_version_download_uri(ref.name, ref.version)
        )
        return await self._call(str(ref), lambda: self._download(ref, uri))

    def _download(self, ref: ModelRef, uri: str) -> Artifact:
        import mlflow.artifacts

        workdir = tempfile.mkdtemp(prefix="serval-mlflow-")
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=workdir, tracking_uri=self.tracking_uri
            )
            if os.path.isfile(local):
                with open(local, "rb") as f:
                    return Artifact(ref, os.path.basename(local), f.read())
            files = [
                os.path.relpath(os.path.join(d, f), local).replace(os.sep, "/")
                for d, _, names in os.walk(local)
                for f in names
            ]
            mlmodel_path = os.path.join(local, "MLmodel")
            mlmodel = None
            if os.path.exists(mlmodel_path):
                with open(mlmodel_path, "rb") as f:
                    mlmodel = f.read()
            chosen = choose_model_file(ref, files, mlmodel)
            with open(os.path.join(local, chosen), "rb") as f:
                return Artifact(ref, chosen, f.read())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
