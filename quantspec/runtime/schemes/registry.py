"""Registry of executable linear schemes, keyed by the matrix key ``(FormatFamily, SchemeId)``."""

from __future__ import annotations

from collections.abc import Callable

from quantspec.errors import Code, InvalidInput, reason
from quantspec.runtime.executables import record
from quantspec.runtime.schemes.base import LinearScheme
from quantspec.vocab import FormatFamily, MatrixLayer, SchemeId

_LINEAR: dict[tuple[FormatFamily, SchemeId], type[LinearScheme]] = {}


def register_linear(family: FormatFamily, scheme: SchemeId) -> Callable[[type[LinearScheme]], type[LinearScheme]]:
    """Class decorator: register a scheme class for ``(family, scheme, linear)``."""

    def deco(cls: type[LinearScheme]) -> type[LinearScheme]:
        key = (family, scheme)
        if key in _LINEAR and _LINEAR[key] is not cls:
            raise ValueError(f"linear scheme {key} registered twice ({_LINEAR[key].__name__}, {cls.__name__})")
        _LINEAR[key] = cls
        cls.keys = (*cls.keys, key)
        record(cls)
        return cls

    return deco


def linear_scheme_for(family: FormatFamily, scheme: SchemeId) -> type[LinearScheme]:
    """The scheme class of matrix key ``(family, scheme, linear)``."""
    try:
        return _LINEAR[(family, scheme)]
    except KeyError:
        raise InvalidInput(
            reason(
                Code.PLAN_NO_SCHEME,
                f"no runtime linear scheme for ({family.value}, {scheme.value}, {MatrixLayer.LINEAR.value})",
                hint="the support matrix marks this cell unsupported, or the runtime lacks it",
            )
        ) from None


def registered_linear() -> dict[tuple[FormatFamily, SchemeId], type[LinearScheme]]:
    """Every registered linear key and its class."""
    return dict(_LINEAR)
