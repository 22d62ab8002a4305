"""Transparent huge pages off for a long-running process.

pyarrow's allocator (mimalloc) asks the kernel for huge pages on its arenas (``madvise(MADV_HUGEPAGE)``). A
server whose Arrow memory comes and goes with each request then pays for zeroing a whole 2 MiB page at each
fault, and the kernel's ``khugepaged`` folds sparsely used ranges back into whole huge pages, so resident
memory creeps up while Arrow holds next to nothing (measured in ``docs/decisions.md``, "Serve without
transparent huge pages"). Redis and MongoDB give the same advice for the same reason.
"""

from __future__ import annotations

import ctypes
import sys

_PR_SET_THP_DISABLE = 41  # linux/prctl.h


def disable_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process (and the processes it starts); False where the
    system offers no such switch (not Linux, or a kernel older than 3.15)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
