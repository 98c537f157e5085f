"""Which requests the proxy routes itself (OIP infer calls of a route with a table)."""

from __future__ import annotations

import pytest

from serval.proxy.model_routes import infer_target


@pytest.mark.parametrize(
    ("path", "prefix", "target"),
    [
        ("/v2/models/tenant7/infer", "/", ("tenant7", None)),
        ("/v2/models/tenant7/versions/3/infer", "/", ("tenant7", "3")),
        ("/mm/v2/models/t/versions/production/infer", "/mm", ("t", "production")),
        ("/v2/models/tenant7", "/", None),  # metadata: the ingress answers
        ("/v2/models/tenant7/ready", "/", None),
        ("/v2/models//infer", "/", None),
        ("/v2/models/a/b/infer", "/", None),
        ("/v2/models/a/versions//infer", "/", None),
        ("/v2/repository/models/a/load", "/", None),
        ("/score", "/", None),
    ],
)
def test_infer_target(path: str, prefix: str, target: tuple[str, str | None] | None) -> None:
    assert infer_target(path, prefix) == target
