"""Patch quality measured on pixels: blur, pen ink, background, dark folds, JPEG blocking.

Why these measures: they are the artefacts the histopathology literature keeps finding in
slide-derived datasets (HistoQC, Quilt's cleaner): out-of-focus scanning (low variance of the
Laplacian), marker ink on the glass (hues that H&E never stains: green, blue, black), glass and
background (bright, unsaturated), tissue folds and debris (very dark), and blocking from heavy
JPEG compression (jumps on the 8x8 grid larger than inside the blocks). Each is a number per
patch; the thresholds that turn numbers into flags live in :class:`pathgen.config.AuditConfig`.
Blur, ink, background and darkness are measured on the patch resized to one analysis size, so a
threshold means the same whatever the export size; blocking is measured on the pixels as stored,
because resizing would move the 8x8 grid.
"""

from __future__ import annotations

import numpy as np

PATCH_METRICS = ("laplacian_var", "pen_fraction", "background_fraction", "dark_fraction", "blockiness")

# OpenCV hue runs 0..179 (degrees / 2). H&E stains are pink to purple (hue ~ 260-360 degrees);
# marker inks are green (~70-170 degrees) and blue (~190-240 degrees).
_GREEN = (35, 85)
_BLUE = (95, 120)


def _as_rgb(image: object) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def blockiness(gray: np.ndarray) -> float:
    """Mean jump across the 8x8 JPEG grid divided by the mean jump inside blocks (~1 = no blocking)."""
    g = gray.astype(np.float32)
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    on_x = (np.arange(dx.shape[1]) % 8) == 7
    on_y = (np.arange(dy.shape[0]) % 8) == 7
    edge = dx[:, on_x].mean() + dy[on_y, :].mean() if on_x.any() and on_y.any() else 0.0
    inner = dx[:, ~on_x].mean() + dy[~on_y, :].mean()
    return float(edge / inner) if inner > 1e-6 else 1.0


def patch_metrics(image: object, analysis_size: int = 512) -> dict[str, float]:
    """The measures of one patch (an RGB array or PIL image), see :data:`PATCH_METRICS`."""
    import cv2

    rgb = _as_rgb(image)
    block = blockiness(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    h, w = rgb.shape[:2]
    if (h, w) != (analysis_size, analysis_size):
        interp = cv2.INTER_AREA if max(h, w) > analysis_size else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (analysis_size, analysis_size), interpolation=interp)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1].astype(np.int16), hsv[..., 2].astype(np.int16)
    background = (val > 215) & (sat < 25)
    inked = (
        (sat > 60)
        & (val > 40)
        & (((hue >= _GREEN[0]) & (hue <= _GREEN[1])) | ((hue >= _BLUE[0]) & (hue <= _BLUE[1])))
    )
    black_ink = (val < 60) & (sat < 60)  # marker black is dark and grey; stain is dark and coloured
    dark = val < 80
    tissue = ~background
    return {
        "laplacian_var": float(cv2.Laplacian(gray, cv2.CV_64F)[tissue].var()) if tissue.any() else 0.0,
        "pen_fraction": float((inked | black_ink).mean()),
        "background_fraction": float(background.mean()),
        "dark_fraction": float(dark.mean()),
        "blockiness": block,
    }
