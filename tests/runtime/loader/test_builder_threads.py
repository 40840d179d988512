"""Builder threads run torch ops on one intra-op thread each; the caller's setting is untouched."""

from __future__ import annotations

import threading

import torch

from quantspec.runtime.loader.build import _one_intra_op_thread


def test_intra_op_threads_are_set_per_builder_thread() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []

    def worker() -> None:
        _one_intra_op_thread()
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [1]
    assert torch.get_num_threads() == before  # thread-local under OpenMP: the caller keeps its count
