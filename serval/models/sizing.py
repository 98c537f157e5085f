"""How many bytes a loaded model occupies, measured after it loads (never declared).

:func:`measure` asks, in order: the ``sizer`` the cache was given, the model's own
``__serval_nbytes__()`` (for frameworks that know better, e.g. a GPU model or an
onnxruntime session whose memory Python cannot see), and otherwise
:func:`estimate_nbytes`, a deep walk of the object graph that counts

- numpy arrays by the buffer they own (views and slices are not counted twice);
- torch tensors by their storage (shared storages once), and modules — TorchScript ones
  included — by their parameters and buffers;
- containers, instances (``__dict__`` and ``__slots__``) and extension objects that
  expose their state through ``__getstate__`` (scikit-learn's trees do);

and skips what is shared with the rest of the process: modules, classes, functions.

Example::

    class Model:
        def __serval_nbytes__(self) -> int:
            return torch.cuda.memory_allocated()
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["SizeWalk", "Sizer", "estimate_nbytes", "measure"]

Sizer = Callable[[Any], int]

_SHARED = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
)
_ATOMS = (str, bytes, bytearray, memoryview, int, float, complex, bool, type(None))
_OBJECT_GETSTATE = getattr(object, "__getstate__", None)  # Python 3.11+ has a default
_MAX_OBJECTS = 2_000_000  # stop walking pathological graphs; the estimate is a floor


def measure(model: Any, sizer: Sizer | None = None) -> int:
    """The size of ``model`` in bytes: ``sizer``, else ``__serval_nbytes__``, else an
    estimate. Never negative."""
    if sizer is not None:
        return max(0, int(sizer(model)))
    hook = getattr(model, "__serval_nbytes__", None)
    if callable(hook) and not isinstance(model, type):
        return max(0, int(hook()))
    return estimate_nbytes(model)


class SizeWalk:
    """The walk behind :func:`estimate_nbytes`, resumable: ``step(root, n)`` visits at
    most ``n`` objects and says whether the walk is over, so a caller can size a small
    model in place and hand only a large one's remaining walk to a thread::

        walk = SizeWalk(model)
        if not walk.step(1_000):
            await asyncio.to_thread(walk.step)
        size = walk.total
    """

    def __init__(self, root: Any = None) -> None:
        self.total = 0
        self.seen: set[int] = set()  # ids of objects counted
        self.owned: set[int] = set()  # ids of arrays that own a counted buffer
        self.buffers: set[tuple[int, int]] = set()  # (data pointer, nbytes) counted
        self.stack: list[Any] = []
        self.temporaries: list[Any] = []  # made during the walk: alive, so ids stay unique
        if root is not None:
            self.push(root)

    def push(self, obj: Any) -> None:
        if id(obj) not in self.seen:
            self.stack.append(obj)

    def step(self, max_objects: int = _MAX_OBJECTS) -> bool:
        """Visit up to ``max_objects`` more objects; True when the walk is over (every
        object counted, or the overall cap reached: the total is then a floor)."""
        stop = min(len(self.seen) + max_objects, _MAX_OBJECTS)
        while self.stack and len(self.seen) < stop:
            obj = self.stack.pop()
            if id(obj) in self.seen or isinstance(obj, _SHARED):
                continue
            self.seen.add(id(obj))
            self.visit(obj)
        return not self.stack or len(self.seen) >= _MAX_OBJECTS

    def visit(self, obj: Any) -> None:
        if isinstance(obj, _ATOMS):
            self.total += sys.getsizeof(obj)
        elif _is_ndarray(obj):
            self.array(obj)
        elif _is_torch(obj, "Tensor"):
            self.tensor(obj)
        else:
            self.total += sys.getsizeof(obj, 64)
            self.children(obj)

    def children(self, obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                self.push(key)
                self.push(value)
            return
        if isinstance(obj, list | tuple | set | frozenset):
            for item in obj:
                self.push(item)
            return
        if _is_torch(obj, "Module"):
            for tensor in (*obj.parameters(), *obj.buffers()):
                self.push(tensor)
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict):
            self.push(state)
        for name in _slot_names(type(obj)):
            value = getattr(obj, name, None)
            if value is not None:
                self.push(value)
        if state is None and getattr(type(obj), "__getstate__", None) is not _OBJECT_GETSTATE:
            try:
                state = obj.__getstate__()  # extension types (sklearn's Tree) show state
            except Exception:
                return
            self.temporaries.append(state)
            self.push(state)

    def array(self, arr: Any) -> None:
        root = arr
        while _is_ndarray(root.base):
            root = root.base
        if root.base is None:  # numpy owns the buffer: count it once, whoever views it
            if id(root) not in self.owned:
                self.owned.add(id(root))
                self.total += sys.getsizeof(root)
            return
        # The buffer belongs to a foreign object (mmap, bytes, an extension type).
        key = (arr.__array_interface__["data"][0], arr.nbytes)
        if key not in self.buffers:
            self.buffers.add(key)
            self.total += arr.nbytes

    def tensor(self, tensor: Any) -> None:
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        self.total += sys.getsizeof(tensor, 64)
        if key not in self.buffers:
            self.buffers.add(key)
            self.total += storage.nbytes()


def estimate_nbytes(obj: Any) -> int:
    """A deep estimate of the memory ``obj`` keeps alive (see the module docs)."""
    walk = SizeWalk(obj)
    walk.step()
    return walk.total


def _is_ndarray(obj: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _is_torch(obj: Any, kind: str) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    cls = torch.Tensor if kind == "Tensor" else torch.nn.Module
    return isinstance(obj, cls)


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return [n for n in names if n not in ("__dict__", "__weakref__")]
