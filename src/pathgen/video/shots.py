"""Shot (scene) cuts on sampled frames, the way PySceneDetect's ContentDetector finds them.

Why not PySceneDetect itself: it hard-requires ``opencv-python``, whose ``cv2`` module clashes with
the ``opencv-python-headless`` pathgen already uses (one package would overwrite the other's files,
and the GUI build drags in X11 libraries). The method is small: convert each frame to HSV, score
the mean absolute difference of hue, saturation and value from the previous frame (equal weights,
on a 0-255 scale), and cut where the score reaches ``threshold`` (ContentDetector's default 27)
once at least ``min_shot_s`` has passed since the last cut (its ``min_scene_len``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass
class Shot:
    start: float
    end: float


def hsv(small: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2HSV).astype(np.int16)


def content_score(prev_hsv: np.ndarray, cur_hsv: np.ndarray) -> float:
    """Mean of the per-channel mean absolute HSV differences (ContentDetector's ``content_val``)."""
    diff = np.abs(cur_hsv - prev_hsv).reshape(-1, 3).mean(axis=0)
    return float(diff.mean())


class ShotDetector:
    """Feed frames in order; :meth:`update` says whether a new shot starts at this frame."""

    def __init__(self, threshold: float = 27.0, min_shot_s: float = 1.0):
        self.threshold = threshold
        self.min_shot_s = min_shot_s
        self._prev: np.ndarray | None = None
        self._last_cut = 0.0
        self.cuts: list[float] = []

    def update(self, t: float, small: np.ndarray) -> bool:
        cur = hsv(small)
        prev, self._prev = self._prev, cur
        if prev is None or prev.shape != cur.shape:
            return False
        if content_score(prev, cur) >= self.threshold and t - self._last_cut >= self.min_shot_s:
            self._last_cut = t
            self.cuts.append(t)
            return True
        return False


def shots_from_cuts(cuts: list[float], duration: float) -> list[Shot]:
    edges = [0.0, *cuts, duration]
    return [Shot(a, b) for a, b in itertools.pairwise(edges) if b > a]
