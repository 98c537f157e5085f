"""Options are validated when they are given, with messages naming the option."""

from __future__ import annotations

import pytest

import serval as serve
from serval.config import AutoscalingConfig, DeploymentConfig, HTTPOptions
from serval.exceptions import ConfigError


def f(request: object) -> str:
    return "x"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"num_replicas": -1}, "num_replicas"),
        ({"num_replicas": "many"}, "num_replicas"),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests"),
        ({"max_queued_requests": -2}, "max_queued_requests"),
        ({"health_check_period_s": 0}, "health_check_period_s"),
        ({"health_check_timeout_s": -1}, "health_check_timeout_s"),
        ({"graceful_shutdown_timeout_s": -1}, "graceful_shutdown_timeout_s"),
        ({"user_config": {"fn": object()}}, "user_config"),
        ({"ray_actor_options": {"num_cpus": -1}}, "ray_actor_options"),
        ({"ray_actor_options": {"num_gpu": 1}}, "ray_actor_options"),
        ({"ray_actor_options": {"runtime_env": {"env_vars": {"A": 1}}}}, "ray_actor_options"),
        ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 2}}, "autoscaling_config"),
        ({"autoscaling_config": {"target_ongoing_requests": 0}}, "target_ongoing_requests"),
        ({"autoscaling_config": {"bogus": 1}}, "bogus"),
        ({"name": ""}, "name"),
        ({"route_prefix": "nope"}, "route_prefix"),
    ],
)
def test_invalid_option_fails_at_decoration_naming_it(options: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        serve.deployment(**options)(f)
    assert isinstance(info.value, ConfigError)


def test_invalid_option_in_options_call() -> None:
    dep = serve.deployment(f)
    with pytest.raises(ConfigError, match="max_ongoing_requests"):
        dep.options(max_ongoing_requests=-5)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="num_replica"):
        serve.deployment(num_replica=2)(f)  # type: ignore[call-overload]


def test_user_config_needs_reconfigure() -> None:
    class NoReconfigure:
        pass

    with pytest.raises(ConfigError, match="reconfigure"):
        serve.deployment(user_config={"a": 1})(NoReconfigure)


def test_decorator_forms_and_options_merge() -> None:
    plain = serve.deployment(f)
    assert plain.name == "f" and plain.num_replicas == 1 and plain.max_ongoing_requests == 5
    configured = serve.deployment(name="g", num_replicas=3, max_ongoing_requests=9)(f)
    changed = configured.options(num_replicas=4)
    assert (changed.name, changed.num_replicas, changed.max_ongoing_requests) == ("g", 4, 9)
    assert configured.num_replicas == 3  # options() returns a copy
    auto = serve.deployment(num_replicas="auto")(f)
    assert isinstance(auto.config.autoscaling_config, AutoscalingConfig)
    legacy = serve.deployment(max_concurrent_queries=7)(f)
    assert legacy.max_ongoing_requests == 7
    assert repr(plain) == "Deployment(name=f,version=None,route_prefix=None)"


def test_deployments_are_not_callable_and_bind_builds_apps() -> None:
    dep = serve.deployment(f)
    with pytest.raises(TypeError, match="bind"):
        dep()
    app = dep.bind(1, x=2)
    assert isinstance(app, serve.Application)
    assert app.args == (1,) and app.kwargs == {"x": 2}


def test_option_objects_have_readable_repr_and_validate() -> None:
    assert repr(AutoscalingConfig(max_replicas=4)) == "AutoscalingConfig(max_replicas=4)"
    assert DeploymentConfig(num_replicas=2).initial_replica_count() == 2
    assert AutoscalingConfig(min_replicas=1, max_replicas=5, initial_replicas=3)
    with pytest.raises(ValueError):
        HTTPOptions.model_validate({"port": 70000})
    with pytest.raises(ConfigError, match="port"):
        serve.start(http_options={"port": -1})
