"""Find the Ray worker processes of this test process's own local Ray instance, to kill one.

Tests that check a stage survives a lost worker SIGKILL a process "as a node or an OOM killer
would". Only processes whose grandparent is this process (the raylet is our child, its workers
are the raylet's children) are returned, so another Ray instance or test run is never touched.
"""

from __future__ import annotations

import os


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def my_ray_workers(title: bytes, containing: bytes = b"") -> list[int]:
    """Our Ray workers whose process title starts with ``title`` (``b"ray::_apply"`` for a task,
    ``b"ray::MapWorker("`` for a Ray Data actor) and holds ``containing``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")[0]
            if cmd.startswith(title) and containing in cmd and _ppid(_ppid(int(name))) == os.getpid():
                found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found
