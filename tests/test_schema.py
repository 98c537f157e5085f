"""Config files: parsing, and errors that give the YAML path of the bad field."""

from __future__ import annotations

import os
import warnings

import pytest
import yaml

from serval.exceptions import ConfigError
from serval.schema import dump_config, load_config, notices

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


RAY_BUILD = os.path.join(os.path.dirname(__file__), "apps", "ray_config", "serve_build.yaml")


def test_ray_serve_build_output_is_accepted_with_notices() -> None:
    """The file Ray Serve 2.60's ``serve build`` writes loads unchanged."""
    with open(RAY_BUILD) as f:
        config = load_config(f.read(), source="serve_build.yaml")
    options = config.effective_http_options()
    assert options is not None
    assert (options.host, options.port, options.location) == ("0.0.0.0", 8000, "EveryNode")
    assert config.logging_config is not None and config.logging_config.encoding == "TEXT"
    assert notices(config) == []  # every field of it means something here
    assert config.grpc_options is not None and config.grpc_options.port == 9000
    model = config.applications[0].deployments[0]
    assert model.overrides() == {
        "num_replicas": 2,
        "user_config": {"weight": 2},
        "ray_actor_options": {"num_cpus": 0.5},
    }


def test_every_ray_field_is_accepted_and_the_inert_ones_noticed() -> None:
    text = """
proxy_location: Disabled
http_options: {host: 127.0.0.1, port: 8001, ssl_keyfile: k.pem, keep_alive_timeout_s: 90}
controller_options: {runtime_env: {}}
tracing_config: {enabled: true, exporter_import_path: "m:f", sampling_ratio: 0.5}
target_capacity: 50
applications:
  - name: a
    import_path: m:app
    host: 0.0.0.0
    port: 8000
    autoscaling_policy: {policy_function: "m:p"}
    external_scaler_enabled: false
    runtime_env: {env_vars: {A: "1"}, pip: [requests], working_dir: "s3://bucket/x.zip"}
    logging_config: {encoding: JSON, log_level: DEBUG}
    deployments:
      - name: D
        max_replicas_per_node: 2
        placement_group_bundles: [{CPU: 1}]
        placement_group_strategy: PACK
        placement_group_bundle_label_selector: [{zone: a}]
        request_router_config: {request_router_class: "m:R"}
        backpressure_config: {status_code: 429}
        gang_scheduling_config: {gang_size: 2}
        deployment_actors: []
        rolling_update_percentage: 0.25
        max_surge_percent: 10
        logging_config: {enable_access_log: false}
"""
    config = load_config(text)
    options = config.effective_http_options()
    assert options is not None and options.location == "NoServer" and options.port == 8001
    found = notices(config)
    for field in (
        "controller_options",
        "target_capacity",
        "http_options.ssl_keyfile",
        "applications[0].host",
        "applications[0].port",
        "applications[0].autoscaling_policy",
        "applications[0].external_scaler_enabled",
        "applications[0].runtime_env.pip",
        "applications[0].runtime_env.working_dir",
        "applications[0].deployments[0].gang_scheduling_config",
        "applications[0].deployments[0].deployment_actors",
        "applications[0].deployments[0].placement_group_bundle_label_selector",
    ):
        assert sum(line.startswith(f"{field}:") for line in found) == 1, (field, found)
    assert len(found) == 12
    overrides = config.applications[0].deployments[0].overrides()
    assert overrides == {
        "max_replicas_per_node": 2,
        "placement_group_bundles": [{"CPU": 1.0}],
        "placement_group_strategy": "PACK",
        "logging_config": {"enable_access_log": False},
        "backpressure_config": {"status_code": 429},
        "rolling_update_percentage": 0.25,
        "max_surge_percent": 10,
        "request_router_config": {"request_router_class": "m:R"},
    }


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        (("EveryNode", "Somewhere"), "proxy_location", "'Disabled', 'HeadOnly' or 'EveryNode'"),
        (("encoding: TEXT", "encoding: XML"), "logging_config.encoding", "'TEXT' or 'JSON'"),
        (("enable_reflection: true", "enable_reflection: maybe"), "grpc_options", "boolean"),
        (("num_replicas: 2", "num_replicas: many"), "deployments[0].num_replicas", "'auto'"),
        (("runtime_env: {}", "runtime_env: []"), "applications[0].runtime_env", "dictionary"),
        (("port: 9000", "port: 9000\n  max_message: 1"), "grpc_options.max_message", "unknown"),
    ],
)
def test_ray_fields_of_the_wrong_type_name_path_and_type(
    change: tuple[str, str], path: str, expected: str
) -> None:
    with open(RAY_BUILD) as f:
        text = f.read().replace(*change)
    with pytest.raises(ConfigError) as info:
        load_config(text, source="serve_build.yaml")
    message = str(info.value)
    assert path in message and expected in message, message


def test_serval_build_output_validates_against_ray_serves_schema() -> None:
    """Ray Serve's own schema (the ``ray`` extra) accepts what ``serval build`` writes."""
    from serval._apply import build_config

    with warnings.catch_warnings():  # Ray's import warns about its own pydantic use
        warnings.simplefilter("ignore")
        from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

        for target, name, prefix in [
            ("tests.apps.ray_style_app:app", "app1", "/"),
            ("tests.apps.config_app:app", "w", "/w"),
        ]:
            raw = yaml.safe_load(dump_config(build_config(target, name, prefix)))
            parsed = ServeDeploySchema.parse_obj(raw)
            assert parsed.applications[0].import_path == target
            # Ray's schema ignores fields it does not know: check each one is known.
            assert set(raw) <= set(ServeDeploySchema.__fields__)
            for app in raw["applications"]:
                assert set(app) <= set(ServeApplicationSchema.__fields__)
                for dep in app["deployments"]:
                    assert set(dep) <= set(DeploymentSchema.__fields__), dep
            parsed_deps = {d.name: d for d in parsed.applications[0].deployments}
            for dep in raw["applications"][0]["deployments"]:
                assert parsed_deps[dep["name"]].num_replicas == dep["num_replicas"]
