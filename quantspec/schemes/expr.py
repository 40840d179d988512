"""Tiny dimension expressions used by tensor contracts (``"N"``, ``"K/2"``, ``"ceil(K/32)"``).

Contracts are data, so shapes are written as short strings over a few symbols (``N``, ``K``,
``E``, ``G``, ``ng``, ``pf``, ``b``, ``s0``, ``s1``...). Each string is compiled once, at
registry build time, into a closure: the planner evaluates thousands of them per checkpoint
and must not re-parse text in that loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

#: An evaluator: symbol values in, integer out (None when the division is not exact or a
#: symbol is unknown: the shape then cannot match).
DimFn = Callable[[Mapping[str, int]], int | None]

_ATOM = r"(?:\d+|[A-Za-z_][A-Za-z_0-9]*)"
_FORM = re.compile(
    rf"^(?:(?P<ceil>ceil)\((?P<ca>{_ATOM})/(?P<cb>{_ATOM})\)|(?P<a>{_ATOM})(?:(?P<op>[*/])(?P<b>{_ATOM}))?)$"
)


def _atom(text: str) -> Callable[[Mapping[str, int]], int | None]:
    if text.isdigit():
        value = int(text)
        return lambda env: value
    return lambda env: env.get(text)


def compile_dim(text: str | int) -> DimFn:
    """Compile one dimension expression: ``X``, ``X*Y``, ``X/Y`` (exact) or ``ceil(X/Y)``."""
    if isinstance(text, int):
        const = text
        return lambda env: const
    m = _FORM.match(text.replace(" ", ""))
    if m is None:
        raise ValueError(f"invalid dimension expression {text!r}")
    if m.group("ceil"):
        ca, cb = _atom(m.group("ca")), _atom(m.group("cb"))

        def _ceil(env: Mapping[str, int]) -> int | None:
            x, y = ca(env), cb(env)
            return None if x is None or not y else math.ceil(x / y)

        return _ceil
    a = _atom(m.group("a"))
    if not m.group("op"):
        return a
    b = _atom(m.group("b"))
    if m.group("op") == "*":

        def _mul(env: Mapping[str, int]) -> int | None:
            x, y = a(env), b(env)
            return None if x is None or y is None else x * y

        return _mul

    def _div(env: Mapping[str, int]) -> int | None:
        x, y = a(env), b(env)
        if x is None or not y or x % y:
            return None
        return x // y

    return _div


def compile_shape(shape: tuple[str | int, ...]) -> tuple[DimFn, ...]:
    """Compile every dimension of a shape."""
    return tuple(compile_dim(d) for d in shape)


def eval_shape(fns: tuple[DimFn, ...], env: Mapping[str, int]) -> tuple[int, ...] | None:
    """Evaluate a compiled shape; None when any dimension is undefined."""
    out: list[int] = []
    for fn in fns:
        v = fn(env)
        if v is None:
            return None
        out.append(v)
    return tuple(out)
