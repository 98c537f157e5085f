"""Generated tenant models for demos, tests and benchmarks: no download, no data set.

Iris-like data (three classes of four features around class centres, the way the iris
data set looks) is made per tenant from a seed, and a scikit-learn classifier is trained
on it. Tenants differ in size (a per-tenant table from 16 KB to 4 MB), so load cost and
memory vary like real tenant models do. Models are written as
``<root>/<tenant>/<version>/model.pkl``: the DirectoryRegistry layout.

Generation is cheap enough for 10,000 tenants (~2 ms of CPU each): the classifier is a
linear discriminant analysis (a closed-form fit, ~1 ms, where a logistic regression's
iterative fit takes 5-20 ms), the file a plain pickle (joblib's pickler is pure Python
and took half the time), and tenants are written in chunks by one process per core.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

CENTRES = np.array([[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
SPREAD = np.array([0.35, 0.35, 0.35, 0.2])


def iris_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of iris-like features and their classes (0, 1, 2)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    shift = rng.normal(0, 0.15, size=(3, 4))  # each tenant's data is a little different
    x = CENTRES[y] + shift[y] + rng.normal(0, 1, size=(n, 4)) * SPREAD
    return x, y


def sample_rows(n: int, seed: int = 0) -> list[list[float]]:
    x, _ = iris_like(n, seed)
    return [[round(float(v), 2) for v in row] for row in x]


@dataclass(frozen=True)
class TenantSpec:
    name: str
    seed: int
    payload_bytes: int  # size of the model's lookup table: tenants differ in size
    version: int = 1


def tenant_specs(count: int, seed: int = 7) -> list[TenantSpec]:
    """``count`` tenants whose sizes follow a long tail (16 KB to 4 MB, median ~40 KB)."""
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.lognormal(np.log(40_000), 1.2, size=count), 16_000, 4_000_000)
    return [TenantSpec(f"tenant{i + 1}", seed * 100_000 + i, int(sizes[i])) for i in range(count)]


class TenantModel:
    """A tenant's classifier: a linear discriminant analysis over the four features.

    ``table`` stands for the per-tenant state real models carry (vocabularies,
    embeddings, calibration tables); its size is what makes tenants cheap or costly to
    load and keep. On disk a tenant is a plain dict (scikit-learn and numpy objects
    only), so any Python with scikit-learn can load it; :func:`as_model` wraps it.
    """

    def __init__(self, estimator: Any, table: np.ndarray, version: int) -> None:
        self.estimator = estimator
        self.table = table
        self.version = version

    def predict(self, rows: object) -> np.ndarray:
        x = np.asarray(rows, dtype=float)
        if x.ndim != 2 or x.shape[1] != 4:
            raise ValueError(f"expected rows of 4 features, got shape {x.shape}")
        result: np.ndarray = self.estimator.predict(x + 0.0 * float(self.table[0]))
        return result

    n_features_in_ = 4  # scikit-learn's attributes: OIP metadata reads them

    @property
    def classes_(self) -> np.ndarray:
        classes: np.ndarray = self.estimator.classes_
        return classes

    def predict_proba(self, rows: object) -> np.ndarray:
        result: np.ndarray = self.estimator.predict_proba(np.asarray(rows, dtype=float))
        return result

    def __serval_nbytes__(self) -> int:
        return int(self.table.nbytes) + 4096


def as_model(obj: Any) -> Any:
    """The model for what a tenant file holds (a dict written here, or any model)."""
    if isinstance(obj, dict) and "estimator" in obj:
        return TenantModel(obj["estimator"], obj["table"], int(obj.get("version", 1)))
    return obj


def train(spec: TenantSpec) -> dict[str, Any]:
    import sklearn
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y = iris_like(150, spec.seed)
    with sklearn.config_context(skip_parameter_validation=True):  # constant, valid options
        estimator = LinearDiscriminantAnalysis().fit(x, y)
    rng = np.random.default_rng(spec.seed)
    table = rng.standard_normal(max(1, spec.payload_bytes // 8)).astype(np.float64)
    return {"estimator": estimator, "table": table, "version": spec.version}


MODEL_FILE = "model.pkl"


def write_tenant(root: str, spec: TenantSpec) -> str:
    """Publish ``spec`` as ``<root>/<tenant>/<version>/model.pkl`` and return that
    directory: written under a hidden temporary directory and renamed into place, so a
    replica never sees a version directory without its model file (the registry
    ignores hidden names). A version directory already there is left as it is."""
    folder = os.path.join(root, spec.name)
    final = os.path.join(folder, str(spec.version))
    if os.path.isdir(final):
        return final
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".v{spec.version}-", dir=folder)
    try:
        with open(os.path.join(staging, MODEL_FILE), "wb") as f:
            pickle.dump(train(spec), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_tenant(root: str, name: str, version: int | str = 1) -> TenantModel:
    """The model a tenant's file holds, loaded here (tests compare answers with it)."""
    with open(os.path.join(root, name, str(version), MODEL_FILE), "rb") as f:
        model = as_model(pickle.load(f))  # files this module wrote
    assert isinstance(model, TenantModel)
    return model


def _write_chunk(args: tuple[str, list[TenantSpec]]) -> list[str]:
    root, specs = args
    return [write_tenant(root, spec) for spec in specs]


def _one_thread() -> None:
    """Worker initializer: one BLAS thread per worker process (the workers are one per
    core; a forked worker's BLAS is already loaded, so the environment is too late)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


_CHUNK = 64  # tenants per task: amortizes the round trip to the worker


def generate(root: str, count: int, *, workers: int | None = None, seed: int = 7) -> Iterator[str]:
    """Write ``count`` tenant models under ``root`` (skipping those already there);
    yields each tenant's name as it is done (for a progress bar)."""
    todo: list[TenantSpec] = []
    for spec in tenant_specs(count, seed):
        if os.path.isdir(os.path.join(root, spec.name, str(spec.version))):
            yield spec.name
        else:
            todo.append(spec)
    if not todo:
        return
    chunks = [todo[i : i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    if workers == 1:
        from threadpoolctl import threadpool_limits

        for chunk in chunks:
            with threadpool_limits(1):  # tiny fits: BLAS threads only add overhead
                _write_chunk((root, chunk))
            yield from (spec.name for spec in chunk)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
        pending = [pool.submit(_write_chunk, (root, chunk)) for chunk in chunks]
        for chunk, future in zip(chunks, pending, strict=True):
            future.result()
            yield from (spec.name for spec in chunk)


def link_registry(root: str, count: int, *, distinct: int = 8, prefix: str = "model") -> list[str]:
    """A registry of ``count`` models ``<prefix>0`` … made in seconds, 100,000 of them
    included: ``distinct`` tenants are generated once (under ``<root>/.base``, a hidden
    directory the registry ignores) and every registered model's file is a hard link to
    one of them — model ``<prefix><i>`` is ``tenant<i % distinct + 1>``'s model. Each is
    a directory and a file to the registry like any other. Models already there are
    kept. Returns the names."""
    base = os.path.join(root, ".base")
    for _ in generate(base, distinct, workers=1):
        pass
    names = []
    for i in range(count):
        name = f"{prefix}{i}"
        names.append(name)
        folder = os.path.join(root, name, "1")
        if os.path.isdir(folder):
            continue
        os.makedirs(folder)
        source = os.path.join(base, f"tenant{i % distinct + 1}", "1", MODEL_FILE)
        os.link(source, os.path.join(folder, MODEL_FILE))
    return names
