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
``benchmarks/memory/memory_bursts.py`` (docs/images.md, "Memory under bursts of photos"; three models,
three bursts of 32 concurrent 12 MP uploads): without, RSS after each burst was 251, 377 and
503 MB above its start (growing); with, 28-29 MB above it, within 3 MB of where one request per
model had left it.
Elsewhere than glibc (musl, macOS), it does nothing.

The price of a fixed 64 KiB threshold is that every larger block is a fresh mapping, paged in
and zeroed by the kernel on first touch (~2.6 us per 4 KiB page on this project's KVM VMs): a
12 MP digit photo's preprocessing paid 2,500-3,300 page faults, more than its arithmetic.
``reuse_image_blocks`` lets Pillow keep a bounded number of freed image blocks for the next
image (Pillow's block allocator, https://pillow.readthedocs.io/en/stable/reference/block_allocator.html):
64 KiB blocks, at most 16 kept (1 MiB). numpy's working arrays are reused by the code that
makes them (``service.images.preprocessing.workspace``).

Blocks that small come from glibc's heap, and a burst of concurrent uploads leaves the heap
fragmented (RSS after the bursts stays higher; ``benchmarks/memory/memory_bursts.py`` measures it,
docs/hardening.md has the figures). ``BurstRelease`` returns the free pages (``malloc_trim(0)``)
once a burst has drained; steady one-at-a-time traffic never triggers it, so the pages it
reuses stay mapped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

# mallopt(3) parameter numbers, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 64 * 1024
# Pillow's image memory: blocks of this size, this many kept after use (1 MiB at most): the
# fewest with which a 12 MP digit photo takes no page faults per call
# (``benchmarks/digits/digit_preprocessing.py --alone`` compares the counts). Each kept block stays in
# RSS after a burst.
PILLOW_BLOCK_BYTES = 64 * 1024
PILLOW_BLOCKS_KEPT = 16


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


def reuse_image_blocks() -> None:
    """Have Pillow allocate images in ``PILLOW_BLOCK_BYTES`` blocks and keep up to
    ``PILLOW_BLOCKS_KEPT`` freed ones for the next images, unless the environment sets
    ``PILLOW_BLOCK_SIZE`` / ``PILLOW_BLOCKS_MAX`` (Pillow reads them at import; they win).
    """
    from PIL import Image

    if "PILLOW_BLOCK_SIZE" not in os.environ:
        Image.core.set_block_size(PILLOW_BLOCK_BYTES)
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(PILLOW_BLOCKS_KEPT)


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the OS now, including those inside the
    heaps (glibc ``malloc_trim(0)``, https://man7.org/linux/man-pages/man3/malloc_trim.3.html).

    Returns:
        True when memory was released, False when none was or not on glibc.
    """
    try:
        import ctypes

        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False


class BurstRelease:
    """Calls ``release`` (``release_free_memory`` by default, on a short-lived thread) when
    the requests in flight return to zero after having reached ``burst`` at once.

    Fed from the event loop (one thread): ``entered(n)`` after a request is admitted and
    ``left(n)`` after it is done, ``n`` being the requests then in flight.
    """

    def __init__(self, burst: int, release: Callable[[], object] = release_free_memory) -> None:
        self._burst = burst
        self._release = release
        self._peak = 0

    def entered(self, in_flight: int) -> None:
        self._peak = max(self._peak, in_flight)

    def left(self, in_flight: int) -> None:
        if in_flight:
            return
        drained_a_burst, self._peak = self._peak >= self._burst, 0
        if drained_a_burst:
            threading.Thread(target=self._release, name="release-free-memory", daemon=True).start()
