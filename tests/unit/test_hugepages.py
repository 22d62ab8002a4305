"""Transparent huge pages off: the process (and what it starts) reports them disabled to the kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
from pyrostore.hugepages import disable_transparent_huge_pages
before = open("/proc/self/status").read()
print(disable_transparent_huge_pages(), "THP_enabled:\\t1" in before)
import subprocess
print(subprocess.run(["grep", "THP_enabled", "/proc/self/status"], capture_output=True, text=True).stdout.split()[1])
"""


def test_a_process_that_turns_huge_pages_off_and_its_children_have_none():
    answer = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert answer == ["True", "True", "0"]
