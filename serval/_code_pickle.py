"""Pickle the user's classes and functions so that tracebacks in replicas name the
user's file and line.

cloudpickle ships code defined in ``__main__``, a notebook or a function body by value,
and writes ``<dynamic-code>`` as every code object's file name (to keep its payload
independent of where the code was defined). A traceback from a replica then points
nowhere. Here each code object keeps its real file name (still deterministic for one
file, so code hashes stay stable); ``linecache`` shows the source line wherever the
file exists, which on the local runtime is always.
"""

from __future__ import annotations

import io
import types
from typing import Any

import cloudpickle

_DYNAMIC = "<dynamic-code>"


def _code_named(code: types.CodeType, filename: str) -> types.CodeType:
    """Unpickling side: the code object with its file name back."""
    return code.replace(co_filename=filename)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.CodeType and obj.co_filename != _DYNAMIC:
            # The renamed copy goes through cloudpickle's own code reducer.
            return _code_named, (obj.replace(co_filename=_DYNAMIC), obj.co_filename)
        return super().reducer_override(obj)


def dumps(value: Any) -> bytes:
    """``cloudpickle.dumps(value, protocol=5)``, keeping code objects' file names."""
    out = io.BytesIO()
    _Pickler(out, protocol=5).dump(value)
    return out.getvalue()
