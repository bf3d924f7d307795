"""glibc allocator settings (service.allocator), checked in fresh interpreters."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from .support import PROJECT_ROOT

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_glibc_accepts_both_settings():
    assert _run("from service import allocator; print(allocator.limit_fragmentation())") == "True"


def test_importing_the_decoder_applies_them_and_environment_settings_win():
    # mallopt(M_ARENA_MAX, 2) caps arenas: 8 threads allocating at once share at most 2 + main.
    code = """
import ctypes, threading
import service.imaging  # applies the settings at import
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
