"""Reading one tile: THE place where patch pixels are read, for every later stage.

A tile is ``size`` level-0 pixels square at level-0 ``(x, y)``; callers usually want it smaller
(672 -> 336 or 224 for encoders and VLMs). Decoding level 0 and shrinking is the common practice and
wastes most of the JPEG decode, which is where the time goes. So we read from the coarsest pyramid
level whose resolution is still at or above what the output needs (level downsample <=
size / out_size, with 1 % tolerance for scanners' 2.0005-style downsamples), then area-resize.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

from pathgen.slides.readers import Slide, open_slide

_LEVEL_TOLERANCE = 0.01
_CACHE_SIZE = 8
_open_slides: OrderedDict[tuple[str, str], Slide] = OrderedDict()


def _as_slide(slide: Slide | str | os.PathLike[str]) -> Slide:
    """A Slide for a path, kept open per process so a worker re-uses one handle per slide."""
    if isinstance(slide, Slide):
        return slide
    key = (os.fspath(slide), "auto")
    cached = _open_slides.get(key)
    if cached is not None:
        _open_slides.move_to_end(key)
        return cached
    opened = open_slide(key[0]).open()
    _open_slides[key] = opened
    while len(_open_slides) > _CACHE_SIZE:
        _, old = _open_slides.popitem(last=False)
        old.close()
    return opened


def choose_level(slide: Slide, size: int, out_size: int) -> int:
    """The cheapest level at or above the resolution needed to produce ``out_size`` from ``size``."""
    return slide.best_level_for_downsample(size / out_size, tolerance=_LEVEL_TOLERANCE)


def read_tile_array(
    slide: Slide | str | os.PathLike[str], x: int, y: int, size: int, out_size: int | None = None
) -> np.ndarray:
    """The tile as an RGB uint8 array (out_size, out_size, 3); see :func:`read_tile`."""
    import cv2

    s = _as_slide(slide)
    size = int(size)
    out = int(out_size or size)
    if size <= 0 or out <= 0:
        raise ValueError(f"tile size and out_size must be positive, got {size}, {out_size}")
    level = choose_level(s, size, out)
    ds = s.level_downsamples[level]
    side = max(1, round(size / ds))
    arr = s.read_region((int(x), int(y)), level, (side, side))
    if side != out:
        interp = cv2.INTER_AREA if side > out else cv2.INTER_CUBIC
        arr = cv2.resize(arr, (out, out), interpolation=interp)
    return arr


def read_tile(
    slide: Slide | str | os.PathLike[str], x: int, y: int, size: int, out_size: int | None = None
) -> Any:
    """Read the ``size``-px (level-0) tile at level-0 ``(x, y)`` as an RGB PIL image of ``out_size``.

    ``slide`` is a `Slide` or a path (opened once per process and cached). The pyramid level is
    the coarsest one that still has at least the output's resolution; the region read there is
    area-resized to ``out_size`` (default: ``size``).
    """
    from PIL import Image

    return Image.fromarray(read_tile_array(slide, x, y, size, out_size))
