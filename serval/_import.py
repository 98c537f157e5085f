"""Resolve ``module:attribute`` (or ``path/to/file.py:attribute``) to an Application."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any

from serval.deployment import Application, Deployment
from serval.exceptions import ConfigError


def import_attr(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"invalid import path {target!r}: expected 'module:attribute'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name.endswith(".py"):
        path = os.path.abspath(module_name)
        if not os.path.exists(path):
            raise ConfigError(f"cannot import {target!r}: {module_name} does not exist")
        sys.path.insert(0, os.path.dirname(path))
        module_name = os.path.splitext(os.path.basename(path))[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from exc
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    return value


def load_application(target: str, args: dict[str, str] | None = None) -> Application:
    """The Application named by ``target``; a builder function gets ``args`` as a dict."""
    value = import_attr(target)
    if isinstance(value, Deployment):
        value = value.bind()
    elif not isinstance(value, Application) and callable(value) and not inspect.isclass(value):
        value = value(args or {})
    if not isinstance(value, Application):
        raise ConfigError(
            f"{target!r} is {type(value).__name__}, not an application: point at the "
            "result of deployment.bind(...) or a function that returns one"
        )
    if args and not callable(import_attr(target)):
        raise ConfigError(f"arguments {sorted(args)} given, but {target!r} is no builder function")
    return value
