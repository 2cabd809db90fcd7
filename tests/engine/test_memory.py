"""The heap policy of desktop/engine/memory.py, checked on glibc's own bookkeeping in a fresh
process (as the app starts: a long-lived process may serve a block from a free heap chunk of
the right size whatever the threshold)."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.engine.memory import MMAP_THRESHOLD_BYTES

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import ctypes, ctypes.util, sys
from desktop.engine.memory import return_large_blocks, MMAP_THRESHOLD_BYTES

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = return_large_blocks() and return_large_blocks() if sys.argv[1] == "on" else False
libc.free(libc.malloc(4 << 20))  # glibc's dynamic threshold would now be 4 MiB
before = libc.mallinfo2().hblkhd  # bytes in mmapped blocks
block = libc.malloc(4 * MMAP_THRESHOLD_BYTES)
during = libc.mallinfo2().hblkhd
libc.free(block)
print(applied, during - before, libc.mallinfo2().hblkhd - before)
"""


def _mapped(setting: str) -> tuple[str, int, int]:
    """(applied, bytes mapped while a 512 KiB block is held, bytes left mapped after its free)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setting],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    applied, during, after = done.stdout.split()
    return applied, int(during), int(after)


def test_a_block_freed_after_a_larger_one_still_gets_its_own_mapping():
    """With the fixed threshold a 512 KiB block is its own mapping, unmapped on free; without it
    (glibc's default), freeing a 4 MiB block first raises the threshold, and the 512 KiB block
    comes from the heap, where it would stay resident once freed."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc is Linux's")
    if not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"):
        pytest.skip("no mallinfo2 (glibc < 2.33, or another C library)")
    applied, during, after = _mapped("on")
    assert applied == "True" and during >= 4 * MMAP_THRESHOLD_BYTES and after == 0
    assert _mapped("off") == ("False", 0, 0)
