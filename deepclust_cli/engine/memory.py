"""The process's allocator: glibc told to keep large freed blocks (the CLI asks before any run)."""

from __future__ import annotations

import ctypes
import ctypes.util

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep large freed blocks for reuse instead of handing them back to the OS.

    By default a block above its mmap threshold (at most 32 MiB) is mapped fresh and unmapped on
    free, so every large temporary tensor on the CPU is page-faulted and zeroed by the kernel again
    (AND's bank logits: README, Results). The cost is that the process keeps its peak heap instead
    of shrinking. Returns whether the settings took effect (False without glibc, e.g. on macOS).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
