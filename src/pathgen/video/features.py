"""Weight-free frame features for the histology head: colour and texture statistics.

Why hand-made features: no weights ship with pathgen and none can be downloaded in tests, yet a
linear head must be trainable out of the box on a few labelled frames. What separates a microscope
view from a slide deck or a desktop is colour (H&E's pink-purple hues at mid saturation), the share
of stained tissue (the tile stage's own tissue mask), and texture (dense, irregular gradients versus
flat areas and sharp text edges). With an encoder spec the head uses the encoder's image embedding
instead (Quilt's DINO + linear head, with any encoder pathgen can load).
"""

from __future__ import annotations

import numpy as np

FEATURES = "colour-texture-v1"  # bump when frame_features changes: old heads are then refused
SIDE = 128


def frame_features(rgb: np.ndarray) -> np.ndarray:
    """A fixed-length float32 vector for one RGB frame (any size)."""
    import cv2

    from pathgen.video.classify import he_tissue_mask

    small = cv2.resize(np.ascontiguousarray(rgb), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    h, s, v = (hsv[..., i].astype(np.float32) for i in range(3))
    weight = s / 255.0
    hue_hist = np.histogram(h, bins=18, range=(0, 180), weights=weight)[0] / (weight.sum() + 1e-6)
    sat_hist = np.histogram(s, bins=8, range=(0, 256))[0] / s.size
    val_hist = np.histogram(v, bins=8, range=(0, 256))[0] / v.size
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy) / 255.0
    edges = cv2.Canny(small, 80, 160) > 0
    mask = he_tissue_mask(small)
    flat = float((mag < 0.02).mean())
    texture = np.array(
        [
            float(mask.mean()),
            float(mag.mean()),
            float(mag.std()),
            float(edges.mean()),
            flat,
            float(grey.std() / 255.0),
            float((s > 40).mean()),
            float(((v > 230) & (s < 20)).mean()),
            float((v < 40).mean()),
        ],
        dtype=np.float32,
    )
    return np.concatenate([hue_hist, sat_hist, val_hist, texture]).astype(np.float32)


def features_of(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack([frame_features(f) for f in frames]) if frames else np.zeros((0, 43), np.float32)
