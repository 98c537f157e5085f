"""Turning a model file into a model object, by file type or by a loader you name.

=================  ==========================  =========================================
loader             extensions                  returns
=================  ==========================  =========================================
``joblib``         ``.joblib``                 whatever was dumped (scikit-learn models)
``pickle``         ``.pkl``, ``.pickle``       whatever was pickled
``onnx``           ``.onnx``                   :class:`OnnxModel` (``.predict``, ``.run``)
``torchscript``    ``.pt``, ``.ts``            a ``torch.jit.ScriptModule`` in eval mode
=================  ==========================  =========================================

Any ``module:function`` (or, through :class:`~serval.models.store.ModelStore`, any
callable) taking an :class:`~serval.models.registry.base.Artifact` works too: an
XGBoost booster from ``.ubj``, a tokenizer and a model from one archive.

.. warning:: **joblib and pickle run code.** Unpickling a file executes whatever it
   says, so load these only from a registry you trust as you trust your own code.
   serval never unpickles from the warm tier without verifying the blob's signature
   (:mod:`serval.models.tiers.signing`), so a shared cache adds no way in. TorchScript
   archives are also executable programs; ONNX files are data.

Frameworks are imported inside each loader, when a model of that kind first loads.
"""

from __future__ import annotations

import io
import pickle
import posixpath
import warnings
from collections.abc import Callable
from typing import Any

from serval.models._plugins import resolve_plugin
from serval.models.registry.base import Artifact

__all__ = [
    "EXTENSIONS",
    "ArtifactLoader",
    "OnnxModel",
    "load_artifact",
    "load_joblib",
    "load_onnx",
    "load_pickle",
    "load_torchscript",
    "loader_for",
]

ArtifactLoader = Callable[[Artifact], Any]

EXTENSIONS: dict[str, str] = {
    ".joblib": "joblib",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
}


def load_joblib(artifact: Artifact) -> Any:
    """A joblib dump (scikit-learn's recommended format). Runs code: trusted stores only."""
    import joblib

    return joblib.load(io.BytesIO(artifact.data))


def load_pickle(artifact: Artifact) -> Any:
    """A plain pickle. Runs code: trusted stores only."""
    return pickle.loads(artifact.data)


def load_onnx(artifact: Artifact) -> OnnxModel:
    """An ONNX graph in an onnxruntime session, on the best provider available."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        artifact.data, providers=onnxruntime.get_available_providers()
    )
    return OnnxModel(session, nbytes=len(artifact.data))


def load_torchscript(artifact: Artifact) -> Any:
    """A TorchScript archive (``torch.jit.save``), on the CPU, in eval mode."""
    import torch

    jit: Any = torch.jit  # untyped in torch's stubs
    with warnings.catch_warnings():
        # torch 2.10+ deprecates TorchScript for torch.export and warns on every load;
        # archives already in registries still load, and a warning per model is noise.
        warnings.filterwarnings("ignore", r"`torch\.jit\.load`", DeprecationWarning)
        module = jit.load(io.BytesIO(artifact.data), map_location="cpu")
    module.eval()
    return module


class OnnxModel:
    """An onnxruntime session with a scikit-learn-like ``predict``.

    Example::

        model.predict(np.asarray(rows, dtype=np.float32))   # the first output
        model.run({"input": x})                              # every output
    """

    def __init__(self, session: Any, nbytes: int) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self._nbytes = nbytes

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        return list(self.session.run(None, feeds))

    def predict(self, inputs: Any) -> Any:
        """The first output for ``inputs`` (an array for the only input, or a dict)."""
        feeds = inputs if isinstance(inputs, dict) else {self.input_names[0]: inputs}
        return self.session.run(None, feeds)[0]

    def __serval_nbytes__(self) -> int:
        # onnxruntime's memory is invisible to Python; its weights are about the file.
        return self._nbytes

    def __repr__(self) -> str:
        return f"OnnxModel(inputs={self.input_names}, outputs={self.output_names})"


def loader_for(filename: str, loader: str | ArtifactLoader | None = None) -> ArtifactLoader:
    """The loader for a file: ``loader`` if given (a name, ``module:function`` or a
    callable), else the one its extension maps to. ``ValueError`` when none fits."""
    if callable(loader):
        return loader
    name = loader
    if name is None:
        name = EXTENSIONS.get(posixpath.splitext(filename)[1].lower())
        if name is None:
            raise ValueError(
                f"no loader for {filename!r}: known extensions are {sorted(EXTENSIONS)}; "
                "set loader= (a name or 'module:function')"
            )
    func: ArtifactLoader = resolve_plugin("loader", name, "loader")
    return func


def load_artifact(artifact: Artifact, loader: str | ArtifactLoader | None = None) -> Any:
    """``artifact`` turned into a model (blocking: run it in a thread)."""
    return loader_for(artifact.filename, loader)(artifact)
