"""Histology-frame classifiers: which frames show a microscope or slide view.

Three kinds, named by one spec (``VideoConfig.classifier``):

- ``colour`` (default, weight-free): the share of the frame that the tile stage's tissue mask calls
  stained tissue (saturation + Otsu, ink hues removed), restricted to H&E's pink-purple hues and
  to textured areas (a flat pink slide or a blue title bar is not tissue). A frame is histology
  when that share is at least ``colour_min_fraction``; the score is the share scaled so that the
  threshold reads 0.5. Slide decks, desktops and flat colours have no textured stained area and score near 0.
- ``head:PATH``: a linear head from ``pathgen video train-classifier`` (a ``.safetensors`` file
  whose metadata names its features: the weight-free colour/texture features, or an encoder spec).
- ``zeroshot:ENCODER``: an image-text encoder spec (``open_clip:…``, ``hf:…``, ``tiny``) scoring
  the frame against histology and non-histology prompts (softmax over the two prompt means).

Every classifier returns a probability-like score in [0, 1]; ``histology_threshold`` decides.
Quilt ORs an ensemble; a user who wants that runs with the stronger head and keeps the rest here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

HISTOLOGY_PROMPTS = (
    "a histopathology image",
    "an H&E stained tissue section under the microscope",
    "a microscopic image of stained tissue",
)
OTHER_PROMPTS = (
    "a presentation slide with text",
    "a computer desktop screenshot",
    "a person talking to the camera",
    "a plain coloured background",
)
CLASSIFIER_FORMS = "'colour', 'head:PATH.safetensors' or 'zeroshot:ENCODER_SPEC'"


class FrameClassifier(Protocol):
    name: str

    def scores(self, frames: Sequence[np.ndarray]) -> np.ndarray: ...


def textured(rgb: np.ndarray, window: int = 9, min_std: float = 6.0) -> np.ndarray:
    """Pixels whose neighbourhood varies (grey-level std over ``window`` px above ``min_std``).

    Why: the tissue mask finds stained *colour*; a flat pink title slide has that colour everywhere.
    Tissue seen through a microscope or a slide viewer always has texture (nuclei, fibres, gaps).
    """
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.boxFilter(grey, -1, (window, window))
    sq = cv2.boxFilter(grey * grey, -1, (window, window))
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    near = cv2.dilate((std > min_std).astype(np.uint8), np.ones((window, window), np.uint8))
    return near.astype(bool)


def he_hue(rgb: np.ndarray) -> np.ndarray:
    """Pixels whose hue is H&E's (pink to purple: OpenCV hue >= 120 or <= 20, i.e. 240-40 degrees).

    Why on top of the tissue mask: that mask was made for slides, where only pen ink is blue or green;
    screens are full of saturated blue title bars and green icons, which are never stained tissue.
    """
    import cv2

    h = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)[..., 0]
    return (h >= 120) | (h <= 20)


def he_tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """The tile stage's tissue mask, kept where the hue is H&E's and the neighbourhood is textured."""
    from pathgen.slides.tissue import tissue_mask_from_rgb

    mask, _ = tissue_mask_from_rgb(rgb)
    return mask & he_hue(rgb) & textured(rgb)


class ColourClassifier:
    """Stained-tissue share of the frame, by the tile stage's tissue mask (no weights)."""

    def __init__(self, min_fraction: float = 0.25, side: int = 256):
        self.min_fraction = min_fraction
        self.side = side
        self.name = f"colour@{min_fraction:g}"

    def fraction(self, rgb: np.ndarray) -> float:
        import cv2

        h, w = rgb.shape[:2]
        scale = self.side / max(h, w)
        small = (
            cv2.resize(
                np.ascontiguousarray(rgb),
                (max(1, int(w * scale)), max(1, int(h * scale))),
                interpolation=cv2.INTER_AREA,
            )
            if scale < 1
            else rgb
        )
        return float(he_tissue_mask(small).mean())

    def scores(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        fractions = np.array([self.fraction(f) for f in frames], dtype=np.float32)
        return np.clip(fractions / (2 * self.min_fraction), 0.0, 1.0)


class ZeroShotClassifier:
    """Softmax of the image's similarity to histology prompts versus other prompts."""

    def __init__(self, spec: str, device: str | None = None):
        from pathgen.models.encoders import load_encoder

        self.encoder = load_encoder(spec, device=device)
        self.name = f"zeroshot:{spec}"
        texts = self.encoder.encode_texts([*HISTOLOGY_PROMPTS, *OTHER_PROMPTS])
        pos = texts[: len(HISTOLOGY_PROMPTS)].mean(0)
        neg = texts[len(HISTOLOGY_PROMPTS) :].mean(0)
        self.classes = np.stack([neg / np.linalg.norm(neg), pos / np.linalg.norm(pos)])

    def scores(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        if not frames:
            return np.zeros(0, dtype=np.float32)
        emb = self.encoder.encode_images([Image.fromarray(f) for f in frames])
        logits = 100.0 * emb @ self.classes.T
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        return (prob[:, 1] / prob.sum(axis=1)).astype(np.float32)


def load_classifier(spec: str, min_fraction: float = 0.25, device: str | None = None) -> FrameClassifier:
    """The classifier a spec names; a bad spec fails with the valid forms."""
    spec = (spec or "").strip()
    if spec == "colour":
        return ColourClassifier(min_fraction)
    if spec.startswith("head:"):
        from pathgen.video.head import LinearHead

        return LinearHead.load(Path(spec[5:]).expanduser(), device=device)
    if spec.startswith("zeroshot:") and spec[9:]:
        return ZeroShotClassifier(spec[9:], device=device)
    raise ValueError(f"unknown frame classifier {spec!r}; valid forms: {CLASSIFIER_FORMS}")
