"""Tissue mask on a ~32x thumbnail: saturation + Otsu, then morphology, holes and specks.

Stained tissue is saturated; glass (white) and empty scanner areas (black) are not. Otsu on the
saturation channel adapts to each slide's stain intensity, a floor keeps an all-glass slide from
"finding" tissue in noise, and dark pixels are dropped so black borders never count. Pen ink is
saturated too: green and cyan-blue marker hues are far from H&E's pink-purple, so they are removed
by hue before Otsu. Closing joins nuclei-sparse tissue, small holes (vessels, tears) are filled,
and specks (dust, debris) are removed, so the grid keeps coherent tissue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SATURATION = 20  # of 255: below this nothing is tissue, whatever Otsu says
MAX_DARK_VALUE = 40  # of 255: darker pixels are scanner background / black borders


@dataclass
class TissueMask:
    """A boolean mask over the slide, ``downsample`` level-0 px per mask px along each axis."""

    mask: np.ndarray
    thumbnail: np.ndarray
    downsample_x: float
    downsample_y: float
    threshold: float

    @property
    def tissue_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


def _ink(hsv: np.ndarray) -> np.ndarray:
    """Marker ink: green/cyan/blue hues that H&E never has (OpenCV hue is degrees / 2)."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    green_cyan = (h >= 35) & (h < 100) & (s > 40)
    strong_blue = (h >= 100) & (h < 125) & (s > 90) & (v < 200)
    return green_cyan | strong_blue


def _fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Fill background components that touch no border and are smaller than ``max_area``."""
    import cv2

    inv = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    if n <= 1:
        return mask
    h, w = mask.shape
    x, y, bw, bh, area = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4]
    touches = (x == 0) | (y == 0) | (x + bw >= w) | (y + bh >= h)
    fill = (~touches) & (area <= max_area)
    fill[0] = False
    return mask | fill[labels]


def _remove_small_objects(mask: np.ndarray, min_area: int) -> np.ndarray:
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    keep = stats[:, 4] >= min_area
    keep[0] = False
    return keep[labels]


def tissue_mask_from_rgb(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The tissue mask of an RGB thumbnail and the saturation threshold used."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    sat = cv2.medianBlur(hsv[..., 1], 5) if min(rgb.shape[:2]) >= 5 else hsv[..., 1]
    usable = (hsv[..., 2] > MAX_DARK_VALUE) & ~_ink(hsv)
    # Dark and ink pixels count as unsaturated background (not dropped): Otsu needs both modes,
    # or it would split the tissue itself in two on a slide with a black background.
    sat = np.where(usable, sat, 0).astype(np.uint8)
    if int(sat.max()) < MIN_SATURATION:
        return np.zeros(rgb.shape[:2], dtype=bool), float(MIN_SATURATION)
    otsu, _ = cv2.threshold(sat.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(float(otsu), float(MIN_SATURATION))
    mask = (sat > threshold) & usable
    k = 7  # at ~32x, 7 mask px ~ 224 level-0 px: joins tissue across gaps narrower than that
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    m8 = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    m8 = cv2.morphologyEx(m8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    out = m8.astype(bool)
    area = out.shape[0] * out.shape[1]
    out = _fill_small_holes(out, max_area=max(16, int(area * 0.002)))
    out = _remove_small_objects(out, min_area=max(9, int(area * 0.0002)))
    return out, threshold


def compute_tissue_mask(slide: object, downsample: float = 32.0) -> TissueMask:
    """Tissue mask of ``slide`` (a `Slide`) on a thumbnail at about ``downsample``."""
    thumb = slide.thumbnail_array(downsample)  # type: ignore[attr-defined]
    mask, threshold = tissue_mask_from_rgb(thumb)
    width, height = slide.dimensions  # type: ignore[attr-defined]
    return TissueMask(
        mask=mask,
        thumbnail=thumb,
        downsample_x=width / mask.shape[1],
        downsample_y=height / mask.shape[0],
        threshold=threshold,
    )
