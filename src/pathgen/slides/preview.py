"""Preview PNG of a tiled slide: thumbnail, tissue mask tinted, kept tiles outlined.

So a user can judge at a glance whether the mask and the grid kept what they expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pathgen.rundir import atomic_path
from pathgen.slides.tissue import TissueMask

_TINT = np.array([0, 200, 80], dtype=np.float32)  # green over tissue
_EDGE = (20, 60, 230)  # blue tile outlines
_MIN_SIDE = 600


def render_preview(tissue: TissueMask, xs: np.ndarray, ys: np.ndarray, tile_size: int) -> np.ndarray:
    """RGB array: the thumbnail with the mask tinted and every kept tile's outline drawn."""
    import cv2

    thumb, mask = tissue.thumbnail, tissue.mask
    zoom = max(1, -(-_MIN_SIDE // max(thumb.shape[:2])))  # small slides: enlarge so tiles are visible
    if zoom > 1:
        thumb = cv2.resize(thumb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        mask = cv2.resize(mask.astype(np.uint8), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST) > 0
    img = thumb.astype(np.float32)
    img = np.where(mask[..., None], img * 0.7 + _TINT * 0.3, img).astype(np.uint8)
    img = np.ascontiguousarray(img)
    dx, dy = tissue.downsample_x / zoom, tissue.downsample_y / zoom
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        p0 = (round(x / dx), round(y / dy))
        p1 = (round((x + tile_size) / dx) - 1, round((y + tile_size) / dy) - 1)
        cv2.rectangle(img, p0, p1, _EDGE, 1)
    return img


def write_preview(path: Path, tissue: TissueMask, xs: np.ndarray, ys: np.ndarray, tile_size: int) -> Path:
    from PIL import Image

    img = render_preview(tissue, xs, ys, tile_size)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path
