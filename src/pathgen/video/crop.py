"""Crop a frame to its slide area when the view has borders or sits in a picture-in-picture.

Screencasts show the slide viewer inside a desktop, lectures put the microscope view beside the
speaker, and letterboxing adds black bars. The slide area is where the stained tissue is: the
bounding box of the H&E tissue mask (the tile stage's mask, restricted to H&E hues and texture; on
a small copy; specks ignored), widened by a margin. The frame is
cropped only when that box is clearly smaller than the frame (``min_gain``), so a full-screen view
with some glass at its edge stays whole.
"""

from __future__ import annotations

import numpy as np


def slide_box(
    rgb: np.ndarray, side: int = 256, margin: float = 0.02, min_gain: float = 0.1
) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of the slide area in ``rgb``'s pixels, or None to keep the whole frame."""
    import cv2

    from pathgen.video.classify import he_tissue_mask

    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = (
        cv2.resize(
            np.ascontiguousarray(rgb),
            (max(1, int(w * scale)), max(1, int(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
        if scale < 1
        else rgb
    )
    mask = he_tissue_mask(small).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    big = [i for i in range(1, n) if stats[i, 4] >= 0.005 * mask.size]  # specks do not widen the box
    ys, xs = np.nonzero(np.isin(labels, big)) if big else (np.array([]), np.array([]))
    if len(xs) == 0:
        return None
    sh, sw = mask.shape
    x0, x1 = xs.min() / sw, (xs.max() + 1) / sw
    y0, y1 = ys.min() / sh, (ys.max() + 1) / sh
    x0, y0 = max(0.0, x0 - margin), max(0.0, y0 - margin)
    x1, y1 = min(1.0, x1 + margin), min(1.0, y1 + margin)
    if (x1 - x0) * (y1 - y0) > 1.0 - min_gain:
        return None
    return int(x0 * w), int(y0 * h), int(np.ceil(x1 * w)), int(np.ceil(y1 * h))


def crop_slide_area(
    rgb: np.ndarray, min_gain: float = 0.1
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    box = slide_box(rgb, min_gain=min_gain)
    if box is None:
        return rgb, None
    x0, y0, x1, y1 = box
    return rgb[y0:y1, x0:x1], box
