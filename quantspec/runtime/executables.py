"""One registry of the runtime's executable classes, keyed by :class:`~quantspec.vocab.Executable`.

The plan names the executable of every accepted layer; the loader asks this registry for exactly
that class and derives nothing else. Linear schemes (``register_linear``) and expert groups
(``register_moe``) are recorded here when their modules are imported, which ``quantspec.runtime``
does on import (so the registry is complete whenever any runtime module is imported); a class whose name is not
an :class:`Executable` member is refused at import, so the plan's vocabulary and the runtime
cannot drift apart (``tests/test_matrix_binding.py`` checks the other direction).
"""

from __future__ import annotations

from quantspec.errors import Code, InvalidInput, reason
from quantspec.vocab import Executable

_CLASSES: dict[Executable, type] = {}


def record(cls: type) -> Executable:
    """Record a runtime class under the executable its name spells; raises on an unknown name."""
    try:
        key = Executable(cls.__name__)
    except ValueError:
        raise ValueError(f"runtime class {cls.__name__} is not a quantspec.vocab.Executable member") from None
    known = _CLASSES.get(key)
    if known is not None and known is not cls:
        raise ValueError(f"executable {key.value} registered twice ({known.__module__}, {cls.__module__})")
    _CLASSES[key] = cls
    return key


def executable_class(key: Executable) -> type:
    """The class the plan's ``executable`` names (``FLOAT_TENSORS`` has none: tensors only)."""
    cls = _CLASSES.get(key)
    if cls is None:
        registered = ", ".join(sorted(k.value for k in _CLASSES))
        raise InvalidInput(reason(
            Code.PLAN_NO_SCHEME, f"the plan names executable {key.value}, which this quantspec runtime does not have",
            hint=f"plan and load with the same quantspec version; registered: {registered}"))
    return cls


def registered_executables() -> dict[Executable, type]:
    """Every executable the runtime has, and its class."""
    return dict(_CLASSES)
