"""Fast region reads from tiled pyramidal TIFFs (SVS, generic TIFF): decode only, nothing else.

Profiling OpenSlide on 672-px tiles showed that a region read costs far more than the JPEG decode
of the tiles under it: the region is composited into ARGB, un-premultiplied and converted to a PIL
RGBA image, ~17 ms per 672-px region even when every tile is cached. Decoding is the floor, so for
TIFF levels that are plain tiled RGB images we read the tile bytes with ``os.pread``, decode them
with tifffile's own codec closure (libjpeg-turbo / OpenJPEG through imagecodecs, JPEGTables and
YCbCr handled), and copy the overlapping parts into the output array. Decoded tiles are kept in a
small per-handle LRU, so neighbouring tiles read in grid order decode each TIFF tile about once.

Anything unusual (strips, planar or non-RGB data, sub-IFDs, unsupported codecs) is not handled
here; the caller falls back to its library's own ``read_region``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

_CACHE_BYTES = 64 * 1024 * 1024  # decoded tiles kept per open slide


class _Level:
    def __init__(self, page: Any):
        self.width = int(page.imagewidth)
        self.height = int(page.imagelength)
        self.tw = int(page.tilewidth)
        self.th = int(page.tilelength)
        self.ntx = -(-self.width // self.tw)
        self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self.counts = np.asarray(page.databytecounts, dtype=np.int64)
        self.jpegtables = page.jpegtables
        self.decode = page.decode  # tifffile's codec closure for this page


def _usable(page: Any) -> bool:
    try:
        return bool(
            page.is_tiled
            and page.planarconfig == 1
            and page.samplesperpixel == 3
            and page.imagedepth == 1
            and np.dtype(page.dtype) == np.uint8
            and page.photometric in (2, 6)  # RGB, YCbCr
        )
    except Exception:
        return False


class TiledTiff:
    """Decode-only reader of the levels of a pyramidal TIFF whose sizes match ``level_dimensions``."""

    def __init__(self, path: str, level_dimensions: tuple[tuple[int, int], ...]):
        import tifffile

        self._fd = os.open(path, os.O_RDONLY)
        self._tif = tifffile.TiffFile(path)
        pages = {}
        for page in self._tif.pages:
            if _usable(page):
                pages.setdefault((int(page.imagewidth), int(page.imagelength)), page)
        self.levels: list[_Level | None] = [
            _Level(pages[dims]) if dims in pages else None for dims in level_dimensions
        ]
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()

    def has_level(self, level: int) -> bool:
        return 0 <= level < len(self.levels) and self.levels[level] is not None

    def _tile(self, level: int, lv: _Level, index: int) -> np.ndarray | None:
        key = (level, index)
        with self._lock:
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
                return got
        count = int(lv.counts[index])
        if count == 0:
            return None
        data = os.pread(self._fd, count, int(lv.offsets[index]))
        arr, _, _ = lv.decode(data, index, jpegtables=lv.jpegtables)
        if arr is None:
            return None
        arr = arr.reshape(arr.shape[-3], arr.shape[-2], arr.shape[-1])
        with self._lock:
            self._cache[key] = arr
            self._cache_bytes += arr.nbytes
            while self._cache_bytes > _CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.nbytes
        return arr

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB region of level pixels ``[x, x+w) x [y, y+h)``; outside the image is white."""
        lv = self.levels[level]
        if lv is None:
            raise ValueError(f"level {level} is not a plain tiled RGB page")
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lv.width), min(y + h, lv.height)
        if x1 <= x0 or y1 <= y0:
            return out
        for r in range(y0 // lv.th, (y1 - 1) // lv.th + 1):
            for c in range(x0 // lv.tw, (x1 - 1) // lv.tw + 1):
                tile = self._tile(level, lv, r * lv.ntx + c)
                if tile is None:
                    continue
                ty, tx = r * lv.th, c * lv.tw
                sy0, sx0 = max(y0, ty), max(x0, tx)
                sy1, sx1 = min(y1, ty + lv.th), min(x1, tx + lv.tw)
                out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = tile[sy0 - ty : sy1 - ty, sx0 - tx : sx1 - tx, :3]
        return out

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cache_bytes = 0
        self._tif.close()
        os.close(self._fd)


def open_tiled_tiff(path: str, level_dimensions: tuple[tuple[int, int], ...]) -> TiledTiff | None:
    """A fast reader for ``path`` when it is a TIFF with usable levels, else None (never raises)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return None
        reader = TiledTiff(path, level_dimensions)
    except Exception:
        return None
    if not any(lv is not None for lv in reader.levels):
        reader.close()
        return None
    return reader
