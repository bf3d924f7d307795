"""Working-size numpy buffers reused from one call to the next, a few kept at most.

Why: ``service.images.allocator`` fixes glibc's mmap threshold at 64 KiB (so bursts of photos give
their memory back), and every array above it is then a fresh mapping whose pages the kernel
faults in and zeroes on first touch: ~100 faults, ~0.25 ms on this project's 2-vCPU VMs, for
each 384 x 288 float32 temporary of the digit normaliser, on every call. A pool of
``Workspace`` objects, each lent to one call at a time, keeps those pages mapped; at most
``keep`` workspaces are retained (a few MB), however many threads have borrowed one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


class Workspace:
    """Named flat buffers, grown as needed, handed out as arrays of the requested shape.

    A name's array is valid until the next ``array`` call with that name; callers keep one
    live use per name, and reuse a name for temporaries whose lives do not overlap (less
    memory kept).
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype`` on the buffer ``name``."""
        count = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < count or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(count, dtype=dtype)
        return buffer[:count].reshape(shape)


class WorkspacePool:
    """Lends ``Workspace`` objects to concurrent callers; keeps up to ``keep`` between calls."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._free: list[Workspace] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[Workspace]:
        """A workspace for the duration of the ``with`` block, used by no one else meanwhile;
        arrays taken from it must not outlive the block."""
        with self._lock:
            workspace = self._free.pop() if self._free else Workspace()
        try:
            yield workspace
        finally:
            with self._lock:
                if len(self._free) < self._keep:
                    self._free.append(workspace)
