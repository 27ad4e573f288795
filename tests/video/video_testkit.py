"""Helpers of the video tests: lectures built from the real CRC patches, rendered non-histology screens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pathgen.video.synth import Scene, desktop_screen, histology_screen, solid_screen, text_screen

SIZE = (320, 224)  # small: tests stay fast


@dataclass
class Lecture:
    path: Path
    scenes: list[Scene]

    def spans(self) -> list[tuple[float, float, Scene]]:
        t, out = 0.0, []
        for s in self.scenes:
            out.append((t, t + s.seconds, s))
            t += s.seconds
        return out


def patches(crc: Path, cls: str) -> list[Path]:
    return sorted((crc / cls).glob("*.png"))


def lecture_scenes(crc: Path) -> list[Scene]:
    """Histology views (four tissue classes) interleaved with a title slide, a desktop and a flat colour."""
    return [
        Scene(
            text_screen(["Colorectal pathology", "Lecture 3: the colon"], SIZE),
            4,
            "Welcome to the third lecture of the course.",
            False,
        ),
        Scene(
            histology_screen(patches(crc, "TUM"), SIZE, 1),
            4,
            "Here we see tumour epithelium forming irregular glands of adenocarcinoma.",
            True,
        ),
        Scene(desktop_screen(SIZE, 7), 4, "Let me open the next file from my folder.", False),
        Scene(
            histology_screen(patches(crc, "LYM"), SIZE, 2),
            4,
            "This area is packed with lymphocytes in a dense infiltrate.",
            True,
        ),
        Scene(solid_screen(SIZE, (20, 40, 160)), 3, "Okay, a short break now.", False),
        Scene(
            histology_screen(patches(crc, "MUS"), SIZE, 3),
            4,
            "Now smooth muscle with long spindle myocytes in bundles.",
            True,
        ),
        Scene(
            text_screen(["Summary", "- glands", "- infiltrate"], SIZE),
            3,
            "That is all for the summary slide.",
            False,
        ),
    ]


def non_histology_images(n: int, seed: int = 100) -> list[Image.Image]:
    """Rendered screens unlike the lecture's (other seeds, texts and colours), for training a head."""
    rng = np.random.default_rng(seed)
    out: list[Image.Image] = []
    colours = [(200, 120, 170), (240, 240, 240), (10, 10, 10), (90, 160, 60), (230, 180, 190), (120, 60, 140)]
    for i in range(n):
        kind = i % 3
        size = (int(rng.integers(200, 400)), int(rng.integers(150, 300)))
        if kind == 0:
            out.append(text_screen([f"Slide {i}", "Differential diagnosis", f"case {seed + i}"], size))
        elif kind == 1:
            out.append(desktop_screen(size, seed + i))
        elif i % 2:
            out.append(solid_screen(size, colours[i % len(colours)]))
        else:
            out.append(solid_screen(size, tuple(int(v) for v in rng.integers(0, 256, 3))))
    return out
