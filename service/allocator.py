"""glibc malloc settings that let a server give decoded-image memory back after a burst.

Two glibc defaults keep a server's RSS near its burst peak long after the burst
(https://www.gnu.org/software/libc/manual/html_node/Memory-Allocation-Tunables.html, mallopt(3)):

- one malloc arena per thread, up to 8 x cores: each inference worker thread frees its
  decoded frames, bodies and tensors into its own arena, where they stay reserved;
- the *dynamic* mmap threshold: once a large block served by ``mmap`` is freed, the threshold
  rises to that block's size (up to 32 MB), so every later request body or image of that size
  comes from the heap, fragments it, and is not returned to the OS.

``limit_fragmentation`` sets ``M_ARENA_MAX`` to 2 and fixes ``M_MMAP_THRESHOLD`` at 64 KiB
(which also turns off the dynamic adjustment), the same as the environment variables
``MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536``. Measured with
``benchmarks/memory_bursts.py`` (README, "Memory"; three models, three bursts of 32 concurrent
12 MP uploads): without, RSS after each burst was 251, 377 and 503 MB above its start (growing);
with, 28-29 MB above it, within 3 MB of where one request per model had left it.
Elsewhere than glibc (musl, macOS), it does nothing.
"""

from __future__ import annotations

import os

# mallopt(3) parameter numbers, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 64 * 1024


def limit_fragmentation() -> bool:
    """Apply the settings above to this process's glibc allocator, unless the environment
    already sets them (``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` win).

    Call it before worker threads start: arenas already created are kept.

    Returns:
        True when glibc accepted both settings, False when not on glibc or refused.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok &= mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok &= mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return bool(ok)
