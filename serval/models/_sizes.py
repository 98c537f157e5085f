"""Byte sizes as people write them: ``2GiB``, ``512 MB``, ``1.5G``, or a plain int."""

from __future__ import annotations

import math
import re

from serval.exceptions import ConfigError

__all__ = ["format_bytes", "parse_bytes"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")
ALLOWED = "an int number of bytes or a string like '512MiB', '2GiB', '1.5GB'"


def parse_bytes(value: object, option: str) -> int:
    """``value`` as a number of bytes; :class:`ConfigError` naming ``option`` otherwise.

    Units: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024),
    case-insensitive; K/M/G/T alone mean powers of 1000.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"invalid {option} {value!r}: expected {ALLOWED}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value != int(value):
            raise ConfigError(f"invalid {option} {value!r}: expected {ALLOWED} (>= 0)")
        return int(value)
    match = _PATTERN.match(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(f"invalid {option} {value!r}: expected {ALLOWED}")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(n: int | float) -> str:
    """``n`` bytes for people: ``1.5 GiB``, ``300 MiB``, ``12 B``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n)} B"
