"""Reading one tile: THE place where patch pixels are read, for every later stage.

A tile is ``size`` level-0 pixels square at level-0 ``(x, y)``; callers usually want it smaller
(672 -> 336 or 224 for encoders and VLMs). Decoding level 0 and shrinking is the common practice and
wastes most of the JPEG decode, which is where the time goes. So we read from the coarsest pyramid
level whose resolution is still at or above what the output needs (level downsample <=
size / out_size, with 1 % tolerance for scanners' 2.0005-style downsamples), then area-resize.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np

from pathgen.slides.readers import Slide, open_slide

_LEVEL_TOLERANCE = 0.01
_CACHE_SIZE = 8


class _Handle:
    """One cached open slide and how many reads are using it right now."""

    __slots__ = ("evicted", "readers", "slide")

    def __init__(self, slide: Slide):
        self.slide = slide
        self.readers = 0
        self.evicted = False


class _SlideCache:
    """Open slides by (path, reader), shared by every thread of a process (the caption stage reads from many).

    Why reference counts: with a plain LRU, a thread opening a new slide evicts and closes the oldest
    handle while another thread may be inside ``read_region`` on it (a closed OpenSlide handle, or
    a closed file descriptor that the OS may already have given to another file). Here an evicted
    handle leaves the cache at once but is closed by the last reader that releases it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, str], _Handle] = OrderedDict()

    @contextmanager
    def borrow(self, path: str, reader: str = "auto") -> Iterator[Slide]:
        handle = self._acquire((path, reader))
        try:
            yield handle.slide
        finally:
            with self._lock:
                handle.readers -= 1
                close = handle.evicted and handle.readers == 0
            if close:
                handle.slide.close()

    def _acquire(self, key: tuple[str, str]) -> _Handle:
        with self._lock:
            handle = self._open.get(key)
            if handle is not None:
                self._open.move_to_end(key)
                handle.readers += 1
                return handle
        # outside the lock: opening a slide can take a while
        opened = open_slide(key[0], reader=key[1]).open()
        to_close: list[Slide] = []
        with self._lock:
            handle = self._open.get(key)
            if handle is None:
                handle = self._open[key] = _Handle(opened)
            else:  # another thread opened it meanwhile: use theirs
                to_close.append(opened)
                self._open.move_to_end(key)
            handle.readers += 1
            while len(self._open) > max(1, _CACHE_SIZE):
                _, old = self._open.popitem(last=False)
                old.evicted = True
                if old.readers == 0:
                    to_close.append(old.slide)
        for slide in to_close:
            with suppress(Exception):  # a failed close must not leave this read's count taken
                slide.close()
        return handle

    def clear(self) -> None:
        """Drop every cached handle (closed now, or by its last reader)."""
        with self._lock:
            handles = list(self._open.values())
            self._open.clear()
            idle = []
            for h in handles:
                h.evicted = True
                if h.readers == 0:
                    idle.append(h.slide)
        for slide in idle:
            slide.close()


_cache = _SlideCache()


@contextmanager
def _borrow(slide: Slide | str | os.PathLike[str], reader: str = "auto") -> Iterator[Slide]:
    """A Slide for a path, kept open per process so that readers re-use one handle per slide.

    ``reader`` is the backend to open a path with (the one slides.parquet recorded); a `Slide`
    object keeps its own."""
    if isinstance(slide, Slide):
        yield slide
        return
    with _cache.borrow(os.fspath(slide), reader) as opened:
        yield opened


def choose_level(slide: Slide, size: int, out_size: int) -> int:
    """The cheapest level at or above the resolution needed to produce ``out_size`` from ``size``."""
    return slide.best_level_for_downsample(size / out_size, tolerance=_LEVEL_TOLERANCE)


def read_tile_array(
    slide: Slide | str | os.PathLike[str],
    x: int,
    y: int,
    size: int,
    out_size: int | None = None,
    reader: str = "auto",
) -> np.ndarray:
    """The tile as an RGB uint8 array (out_size, out_size, 3); see :func:`read_tile`."""
    import cv2

    size = int(size)
    out = int(out_size or size)
    if size <= 0 or out <= 0:
        raise ValueError(f"tile size and out_size must be positive, got {size}, {out_size}")
    with _borrow(slide, reader) as s:
        level = choose_level(s, size, out)
        ds = s.level_downsamples[level]
        side = max(1, round(size / ds))
        arr = s.read_region((int(x), int(y)), level, (side, side))
    if side != out:
        interp = cv2.INTER_AREA if side > out else cv2.INTER_CUBIC
        arr = cv2.resize(arr, (out, out), interpolation=interp)
    return arr


def read_tile(
    slide: Slide | str | os.PathLike[str],
    x: int,
    y: int,
    size: int,
    out_size: int | None = None,
    reader: str = "auto",
) -> Any:
    """Read the ``size``-px (level-0) tile at level-0 ``(x, y)`` as an RGB PIL image of ``out_size``.

    ``slide`` is a `Slide` or a path (opened with ``reader`` once per process and cached). The
    pyramid level is the coarsest one that still has at least the output's resolution; the region
    read there is area-resized to ``out_size`` (default: ``size``).
    """
    from PIL import Image

    return Image.fromarray(read_tile_array(slide, x, y, size, out_size, reader))
