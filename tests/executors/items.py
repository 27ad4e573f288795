"""Per-item functions for the executor tests: module-level, so worker processes and Ray import them."""

from __future__ import annotations

import os
from pathlib import Path


def square(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x * x


def crash_on(item: tuple[int, int]) -> int:
    """Kills its own process (as a native decoder segfault would) for the item ``crash``."""
    x, crash = item
    if x == crash:
        os._exit(1)
    return x * 10


def die_once(item: tuple[int, str]) -> int:
    """Kills its worker the first time it sees an item (a marker file remembers), then succeeds."""
    x, marker_dir = item
    marker = Path(marker_dir) / f"{x}.seen"
    if x % 2 == 0 and not marker.exists():
        marker.write_text("killed once")
        os._exit(1)
    return x + 100


def native_threads(_: int) -> tuple[int, str | None]:
    """OpenCV's thread count and OMP_NUM_THREADS as a worker sees them."""
    import cv2

    return cv2.getNumThreads(), os.environ.get("OMP_NUM_THREADS")
