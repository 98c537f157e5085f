"""A registry in a directory tree: a local path, a file:// URL, fsspec's memory://."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from serval.exceptions import ModelNotFoundError
from serval.models import ModelStore
from serval.models.registry import ModelRef, make_registry
from serval.models.registry.directory import DirectoryRegistry
from tests.models import _data


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A registry in fsspec's in-memory filesystem (the same API as s3://, gs://)."""
    root = f"memory://registry-{secrets.token_hex(4)}"
    fs = fsspec.filesystem("memory")
    fs.pipe(
        {
            f"{root}/iris/1/model.joblib": _data.joblib_bytes(_data.sklearn_model("logreg")),
            f"{root}/iris/2/model.joblib": _data.joblib_bytes(_data.sklearn_model("forest")),
            f"{root}/iris/aliases.json": b'{"production": "1"}',
        }
    )
    yield root
    fs.rm(root, recursive=True)


@pytest.fixture(params=["path", "file-url", "memory"])
def registry(request: pytest.FixtureRequest, model_dir: Path) -> DirectoryRegistry:
    if request.param == "memory":
        return DirectoryRegistry(request.getfixturevalue("memory_url"))
    url = str(model_dir) if request.param == "path" else model_dir.as_uri()
    return DirectoryRegistry(url)


async def test_versions_latest_and_aliases(registry: DirectoryRegistry) -> None:
    assert await registry.versions("iris") == ["1", "2"]
    assert await registry.resolve("iris") == ModelRef("iris", "2")
    assert await registry.resolve("iris@1") == ModelRef("iris", "1")
    assert await registry.resolve("iris@production") == ModelRef("iris", "1")
    assert await registry.resolve("models:/iris/2") == ModelRef("iris", "2")
    artifact = await registry.fetch(ModelRef("iris", "2"))
    assert artifact.filename == "model.joblib" and artifact.data.startswith(b"\x80")


async def test_unknown_models_versions_and_aliases_are_named(
    registry: DirectoryRegistry,
) -> None:
    with pytest.raises(ModelNotFoundError, match="'tenant404' does not exist"):
        await registry.resolve("tenant404")
    with pytest.raises(ModelNotFoundError, match="no version or alias 'staging'"):
        await registry.resolve("iris@staging")
    with pytest.raises(ModelNotFoundError, match="'iris@7' does not exist"):
        await registry.fetch(ModelRef("iris", "7"))


async def test_loads_through_a_store(registry: DirectoryRegistry) -> None:
    store = ModelStore(registry)
    X, y = _data.iris()
    for model_id in ("iris", "iris@production"):
        model = await store.load(model_id)
        assert (model.predict(X) == y).mean() > 0.9
    await store.close()


async def test_natural_order_hidden_entries_and_an_mlflow_layout(tmp_path: Path) -> None:
    for version in ("9", "10", ".staging-11"):
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "model.pkl").write_bytes(_data.pickle_bytes(version))
    (tmp_path / "m" / "10" / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
    )
    (tmp_path / "m" / "10" / "requirements.txt").write_text("scikit-learn\n")
    registry = DirectoryRegistry(str(tmp_path))
    assert await registry.versions("m") == ["9", "10"]  # a half-published version is hidden
    artifact = await registry.fetch(await registry.resolve("m"))
    assert (artifact.ref, artifact.filename) == (ModelRef("m", "10"), "model.pkl")


async def test_a_bad_aliases_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.pkl").write_bytes(b"x")
    (tmp_path / "m" / "aliases.json").write_text("[1, 2]")
    registry = DirectoryRegistry(str(tmp_path))
    with pytest.raises(ValueError, match=r"aliases\.json must hold a JSON object"):
        await registry.resolve("m@prod")


def test_picked_from_a_registry_string(model_dir: Path) -> None:
    registry = make_registry(model_dir.as_uri())
    assert isinstance(registry, DirectoryRegistry)
    assert registry.identity == model_dir.as_uri()
    assert repr(registry) == f"DirectoryRegistry({model_dir.as_uri()!r})"


async def test_a_registry_whose_root_is_gone_is_unreachable_not_a_missing_model(
    model_dir: Path, tmp_path: Path
) -> None:
    registry = DirectoryRegistry(str(model_dir))
    model_dir.rename(tmp_path / "elsewhere")  # unmounted, moved away
    for attempt in (registry.versions("iris"), registry.fetch(ModelRef("iris", "1"))):
        with pytest.raises(OSError, match=f"registry {model_dir} is unreachable"):
            await attempt
    (tmp_path / "elsewhere").rename(model_dir)
    assert await registry.versions("iris") == ["1", "2"]
