"""Progress bar of long loads: tqdm on a terminal, silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def wants_bar(enabled: bool) -> bool:
    """A bar is drawn only when asked for and stderr is a terminal (logs stay clean)."""
    return enabled and sys.stderr.isatty()


@contextmanager
def progress_bar(total: int, *, enabled: bool, desc: str = "loading") -> Iterator[Callable[[int], None]]:
    """Yield ``tick(n)`` advancing a bar of ``total`` tensors (a no-op when no bar is drawn)."""
    if not wants_bar(enabled) or total <= 0:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="tensor", leave=False, file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()
