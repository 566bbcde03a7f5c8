"""Torch thread count for one block of work.

Small models on this kind of 2-core CPU run faster on one intra-op thread than on two busy ones,
so each step's config has a thread setting; this context manager applies it and restores the
previous value afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily run torch on ``n`` intra-op threads (``None`` or ``n`` <= 0 leaves the setting alone)."""
    old = torch.get_num_threads()
    if n is not None and n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
