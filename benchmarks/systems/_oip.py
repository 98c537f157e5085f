"""What the OIP scenario serves and sends, the same for serval and MLServer.

One scikit-learn model, a 4-feature ``LogisticRegression`` fitted in code on the iris
data scikit-learn ships (nothing downloaded) and saved with joblib, as
``<registry>/logreg/1/model.joblib``: serval's many-models app reads that registry and
MLServer's scikit-learn runtime that file. Every request carries the same 3 rows: an
OIP v2 JSON infer body (``predict`` requested, as MLServer answers by default), or the
many-models app's own ``POST /score`` body.
"""

from __future__ import annotations

import json
import os
from typing import Any

MODEL = "logreg"
VERSION = "1"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 2.8, 4.3, 1.3]]
INFER_PATH = f"/v2/models/{MODEL}/infer"
SCORE_PATH = "/score"


def infer_body() -> bytes:
    """The OIP v2 REST JSON infer request (one FP64 tensor of 3 rows)."""
    tensor: dict[str, Any] = {
        "name": "input-0",
        "shape": [len(ROWS), len(ROWS[0])],
        "datatype": "FP64",
        "data": [v for row in ROWS for v in row],
    }
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "predict"}]}).encode()


def score_body() -> bytes:
    """The many-models app's ``POST /score`` request for the same rows."""
    return json.dumps({"tenant": MODEL, "data": ROWS}).encode()


def write_registry(root: str) -> str:
    """Fit the model and save it as ``<root>/logreg/1/model.joblib``; returns its path."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    folder = os.path.join(root, MODEL, VERSION)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.joblib")
    joblib.dump(model, path)
    return path
