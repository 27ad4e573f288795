"""Stable frames within a shot: runs of frames that do not move, and one frame for each run.

As Quilt does (``data/`` of wisdomikezogwo/quilt1m): two consecutive frames are "the same view" when
the SSIM of random 64x64 crops is above 0.98; a run of such frames lasting at least
``min_stable_s`` is a stable clip, represented by its median frame. Crop positions are drawn once
per video (seeded), so a re-run picks the same frames. Panning, zooming and scrolling break runs,
which is the point: a frame caught mid-motion is blurred and its narration is about a moving view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pathgen.video.decode import Frame


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two grey images (Gaussian window, sigma 1.5, Wang et al. 2004 constants)."""
    import cv2

    a, b = a.astype(np.float32), b.astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (7, 7), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float((num / den).mean())


class CropSSIM:
    """Whether two small frames show the same view: min SSIM over fixed random crops > threshold."""

    def __init__(self, shape: tuple[int, int], crops: int = 4, size: int = 64, seed: int = 0):
        h, w = shape
        size = min(size, h, w)
        rng = np.random.default_rng(seed)
        self.boxes = [
            (int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1)), size)
            for _ in range(crops)
        ]

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        ga, gb = _grey(a), _grey(b)
        return min(ssim(ga[y : y + s, x : x + s], gb[y : y + s, x : x + s]) for y, x, s in self.boxes)


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


@dataclass
class Run:
    """A stable run: its time span and a bounded, evenly thinned set of its full-resolution frames."""

    start: float
    end: float
    shot: int = 0
    frames: list[Frame] = field(default_factory=list)
    stride: int = 1
    count: int = 0

    def add(self, frame: Frame, cap: int) -> None:
        """Keep every ``stride``-th frame; when ``cap`` is reached keep every other one and double the
        stride, so memory stays bounded however long a slide stays on screen."""
        if self.count % self.stride == 0:
            self.frames.append(frame)
            if len(self.frames) > cap:
                self.frames = self.frames[::2]
                self.stride *= 2
        self.count += 1
        self.end = frame.t

    def median(self) -> Frame:
        mid = (self.start + self.end) / 2
        return min(self.frames, key=lambda f: abs(f.t - mid))


class StableRuns:
    """Feed frames of one shot at a time; finished runs long enough come out of :meth:`update` and
    :meth:`flush`."""

    def __init__(
        self,
        threshold: float = 0.98,
        min_stable_s: float = 3.0,
        crops: int = 4,
        size: int = 64,
        step_s: float = 0.5,
        cap: int = 16,
        seed: int = 0,
    ):
        self.threshold = threshold
        self.min_stable_s = min_stable_s
        self.crops, self.size, self.seed = crops, size, seed
        self.step_s = step_s
        self.cap = cap
        self._cmp: CropSSIM | None = None
        self._prev: Frame | None = None
        self._run: Run | None = None

    def _same(self, a: Frame, b: Frame) -> bool:
        if a.small.shape != b.small.shape:
            return False
        if self._cmp is None:
            self._cmp = CropSSIM(a.small.shape[:2], self.crops, self.size, self.seed)
        return self._cmp.score(a.small, b.small) > self.threshold

    def update(self, frame: Frame, new_shot: bool, shot: int = 0) -> Run | None:
        done = None
        if new_shot or self._prev is None or not self._same(self._prev, frame):
            done = self._close()
            self._run = Run(frame.t, frame.t, shot)
        assert self._run is not None
        self._run.add(frame, self.cap)
        self._prev = frame
        return done

    def flush(self) -> Run | None:
        done = self._close()
        self._run, self._prev = None, None
        return done

    def _close(self) -> Run | None:
        run, self._run = self._run, None
        if run is None:
            return None
        # a run of n frames sampled every step_s covers n * step_s seconds of screen time
        run.end = run.end + self.step_s
        return run if run.end - run.start >= self.min_stable_s else None
