"""Model ids, versions, artifacts and choosing the model file; the in-memory fake."""

from __future__ import annotations

import pytest

from serval.exceptions import ConfigError, ModelNotFoundError
from serval.models.registry import (
    Artifact,
    MemoryRegistry,
    ModelRef,
    ModelSpec,
    choose_model_file,
    make_registry,
    parse_model_id,
    version_key,
)

REF = ModelRef("iris", "3")


@pytest.mark.parametrize(
    ("model_id", "spec"),
    [
        ("iris", ModelSpec("iris")),
        ("iris@latest", ModelSpec("iris")),
        ("iris@3", ModelSpec("iris", "3")),
        ("iris@production", ModelSpec("iris", "production")),
        ("models:/iris/3", ModelSpec("iris", "3")),
        ("models:/iris@champion", ModelSpec("iris", "champion")),
        ("tenant-7.v2_x", ModelSpec("tenant-7.v2_x")),
    ],
)
def test_model_ids(model_id: str, spec: ModelSpec) -> None:
    assert parse_model_id(model_id) == spec


@pytest.mark.parametrize("model_id", ["", ".hidden", "../etc", "a/b", "iris@", "iris@../1"])
def test_malformed_ids_are_not_found_and_named(model_id: str) -> None:
    with pytest.raises(ModelNotFoundError, match="not a valid model id") as caught:
        parse_model_id(model_id)
    assert repr(model_id) in str(caught.value)


def test_natural_version_order() -> None:
    assert sorted(["10", "9", "1"], key=version_key) == ["1", "9", "10"]
    assert sorted(["v1.10", "v1.9", "v1.9a"], key=version_key) == ["v1.9", "v1.9a", "v1.10"]


def test_artifact_packs_and_unpacks() -> None:
    artifact = Artifact(REF, "model.joblib", b"\x00weights")
    assert Artifact.from_bytes(memoryview(artifact.to_bytes())) == artifact
    assert str(REF) == "iris@3"
    with pytest.raises(ValueError, match="truncated"):
        Artifact.from_bytes(b"\x00\x00\x10\x00{}")
    with pytest.raises(ValueError, match="malformed artifact header"):
        Artifact.from_bytes(b"\x00\x00\x00\x02{}")


def test_choosing_the_model_file() -> None:
    assert choose_model_file(REF, ["model.joblib", "requirements.txt", "MLmodel"]) == (
        "model.joblib"
    )
    assert choose_model_file(REF, ["model.onnx", "notes.md"]) == "model.onnx"
    assert choose_model_file(REF, ["weights.bin"]) == "weights.bin"
    assert choose_model_file(REF, ["a.pkl", "model.pt"]) == "model.pt"
    assert choose_model_file(REF, [".DS_Store", "x.pkl"]) == "x.pkl"
    mlmodel = b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
    assert choose_model_file(REF, ["model.pkl", "other.pkl"], mlmodel) == "model.pkl"
    with pytest.raises(FileNotFoundError, match="iris@3 has no model file"):
        choose_model_file(REF, ["MLmodel", "conda.yaml"])
    with pytest.raises(FileNotFoundError, match="several candidate model files"):
        choose_model_file(REF, ["a.pkl", "b.pkl"])


async def test_memory_registry_resolves_versions_and_aliases() -> None:
    registry = MemoryRegistry()
    for version in ("1", "2", "10"):
        registry.add("iris", version, "model.pkl", version.encode())
    registry.set_alias("iris", "production", "2")
    assert await registry.resolve("iris") == ModelRef("iris", "10")
    assert await registry.resolve("iris@1") == ModelRef("iris", "1")
    assert await registry.resolve("iris@production") == ModelRef("iris", "2")
    assert (await registry.fetch(ModelRef("iris", "2"))).data == b"2"
    assert registry.fetches == [ModelRef("iris", "2")]
    with pytest.raises(ModelNotFoundError, match="'iris' has no version or alias 'staging'"):
        await registry.resolve("iris@staging")
    with pytest.raises(ModelNotFoundError, match="'nope' does not exist"):
        await registry.resolve("nope")
    with pytest.raises(ModelNotFoundError):
        registry.set_alias("iris", "x", "99")


def test_make_registry() -> None:
    assert isinstance(make_registry("memory"), MemoryRegistry)
    with pytest.raises(ConfigError, match="no model registry configured"):
        make_registry(None)
    with pytest.raises(ConfigError, match="give the tracking URI"):
        make_registry("mlflow:")
    with pytest.raises(ConfigError, match="invalid registry 'nosuchproto://x'"):
        make_registry("nosuchproto://x")
