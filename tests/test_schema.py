"""Config files: parsing, and errors that give the YAML path of the bad field."""

from __future__ import annotations

import pytest

from serval.exceptions import ConfigError
from serval.schema import dump_config, load_config

GOOD = """
http_options: {port: 8123}
applications:
  - name: shop
    route_prefix: /shop
    import_path: tests.apps.config_app:app
    deployments:
      - name: Weighted
        num_replicas: 2
        user_config: {weight: 2}
"""


def test_round_trip() -> None:
    config = load_config(GOOD)
    assert config.applications[0].deployments[0].overrides() == {
        "num_replicas": 2,
        "user_config": {"weight": 2},
    }
    assert load_config(dump_config(config)) == config


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            GOOD.replace("num_replicas: 2", "num_replicas: -2"),
            "applications[0].deployments[0].num_replicas",
        ),
        (
            GOOD.replace("num_replicas: 2", "num_replica: 2"),
            "applications[0].deployments[0].num_replica: unknown field",
        ),
        (GOOD.replace("import_path: tests.apps.config_app:app", ""), "applications[0].import_path"),
        (GOOD.replace("{port: 8123}", "{port: nope}"), "http_options.port"),
        ("applications: 3", "applications"),
        ("- just a list", "expected a mapping"),
        ("a: [", "not valid YAML"),
    ],
)
def test_errors_name_the_yaml_path(text: str, path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
        load_config(text, source="serval.yaml")
