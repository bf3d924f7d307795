"""Allocator settings (service.images.allocator: glibc's malloc, Pillow's image blocks) and OpenBLAS's
thread count (service/__init__.py), checked in fresh interpreters."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading

import pytest

from service.images import allocator

from .support import PROJECT_ROOT

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "PILLOW_", "OPENBLAS_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_glibc_accepts_both_settings():
    assert _run("from service.images import allocator; print(allocator.limit_fragmentation())") == "True"


def test_importing_the_decoder_applies_them_and_environment_settings_win():
    # mallopt(M_ARENA_MAX, 2) caps arenas: 8 threads allocating at once share at most 2 + main.
    code = """
import ctypes, threading
import service.images.decode  # applies the settings at import
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fmemopen.restype = ctypes.c_void_p
libc.free.argtypes = libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(200):
        libc.free(libc.malloc(1000))
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
# malloc_info(3) writes one <heap nr=...> element per arena
buf = ctypes.create_string_buffer(1 << 16)
f = libc.fmemopen(buf, ctypes.c_size_t(1 << 16), b"w")
libc.malloc_info(0, f); libc.fclose(f)
print(buf.value.decode().count('<heap nr='))
"""
    assert int(_run(code)) <= 2
    assert int(_run(code, MALLOC_ARENA_MAX="8")) > 2


def test_pillow_keeps_a_bounded_number_of_image_blocks_and_environment_settings_win():
    # Pillow's block allocator: 64 KiB blocks, up to 16 kept for reuse (1 MiB); PILLOW_* win.
    code = (
        "import service.images.decode; from PIL import Image;"
        " print(Image.core.get_block_size(), Image.core.get_blocks_max())"
    )
    assert _run(code) == "65536 16"
    assert _run(code, PILLOW_BLOCKS_MAX="0", PILLOW_BLOCK_SIZE="1m") == f"{1 << 20} 0"


def test_the_service_starts_openblas_single_threaded_unless_told_otherwise():
    code = "import service, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    assert _run(code) == "1"
    assert _run(code, OPENBLAS_NUM_THREADS="2") == "2"


def test_free_pages_go_back_once_a_burst_has_drained_and_not_between_single_requests():
    released = threading.Semaphore(0)
    bursts = allocator.BurstRelease(burst=4, release=released.release)
    for _ in range(10):  # one request at a time: never
        bursts.entered(1)
        bursts.left(0)
    for n in (1, 2, 3):  # three at once is not a burst of four
        bursts.entered(n)
    for n in (2, 1, 0):
        bursts.left(n)
    assert not released.acquire(timeout=0.2)
    for n in (1, 2, 3, 4, 5):
        bursts.entered(n)
    for n in (4, 3, 2, 1):
        bursts.left(n)
    assert not released.acquire(timeout=0.2)  # not before the last request has left
    bursts.left(0)
    assert released.acquire(timeout=5)
    bursts.entered(1)
    bursts.left(0)
    assert not released.acquire(timeout=0.2)  # the peak was reset


def test_releasing_free_memory_returns_a_fragmented_heap_to_the_os():
    # 64 MB in 32 KiB heap blocks, every 64th kept: the heap cannot shrink from its top, and
    # its RSS stays until malloc_trim(0) gives back the free pages inside it.
    code = """
import ctypes, psutil
from service.images import allocator
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(32768) for _ in range(2048)]
for b in blocks:
    ctypes.memset(b, 1, 32768)
for i, b in enumerate(blocks):
    if i % 64:
        libc.free(b)
before = psutil.Process().memory_info().rss
released = allocator.release_free_memory()
print(released, (before - psutil.Process().memory_info().rss) // 2**20)
"""
    released, freed_mib = _run(code).split()
    assert released == "True" and int(freed_mib) >= 32
