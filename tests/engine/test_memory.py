"""The heap policy of desktop/engine/memory.py, checked on glibc's own bookkeeping."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pytest

from desktop.engine.memory import MMAP_THRESHOLD_BYTES, return_large_blocks


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _glibc():
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc is Linux's")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):  # glibc < 2.33, or another C library
        pytest.skip("no mallinfo2 in this C library")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def test_a_block_freed_after_a_larger_one_still_gets_its_own_mapping():
    """Without the fixed threshold, freeing a 4 MiB block raises glibc's threshold to 4 MiB and
    a later 512 KiB block comes from the heap (and stays resident there once freed)."""
    libc = _glibc()
    assert return_large_blocks()
    assert return_large_blocks()  # idempotent
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblkhd  # bytes in mmapped blocks
    block = libc.malloc(4 * MMAP_THRESHOLD_BYTES)
    during = libc.mallinfo2().hblkhd
    libc.free(block)
    assert during - before >= 4 * MMAP_THRESHOLD_BYTES
    assert libc.mallinfo2().hblkhd == before  # and it is unmapped on free
