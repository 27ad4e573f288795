"""The slide around a patch: a small image of its neighbourhood with the patch outlined.

Why: a pathologist judges a patch better seeing what surrounds it (the edge of a tumour, a fold
next to it). The window is ``CONTEXT_TILES`` patch sides wide, centred on the patch and kept inside
the slide, read through the one patch reader at a coarse pyramid level.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

CONTEXT_TILES = 5
CONTEXT_PX = 400


def context_jpeg(slide: Mapping[str, Any], x: int, y: int, size: int, out: int = CONTEXT_PX) -> bytes:
    """JPEG bytes of the neighbourhood of the level-0 patch ``(x, y, size)`` with a box around it."""
    from PIL import Image, ImageDraw

    from pathgen.slides import read_tile_array

    window = size * CONTEXT_TILES
    width, height = int(slide.get("width") or 0), int(slide.get("height") or 0)
    x0 = x + size // 2 - window // 2
    y0 = y + size // 2 - window // 2
    if width > window:
        x0 = min(max(0, x0), width - window)
    if height > window:
        y0 = min(max(0, y0), height - window)
    x0, y0 = max(0, x0), max(0, y0)
    arr = read_tile_array(str(slide["path"]), x0, y0, window, out, reader=slide.get("reader") or "auto")
    image = Image.fromarray(arr)
    scale = out / window
    box = [(x - x0) * scale, (y - y0) * scale, (x - x0 + size) * scale, (y - y0 + size) * scale]
    ImageDraw.Draw(image).rectangle(box, outline=(0, 200, 0), width=3)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
