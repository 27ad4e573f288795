"""Is a slide brightfield (H&E, IHC: dark stain on bright glass) or fluorescence (light on black)?

The tissue mask looks for saturated pixels, and a fluorescence scan has plenty (blue DAPI nuclei,
green and red markers), so without this check it is tiled as if it were H&E and nobody is told.
The two differ in their background: transmitted light makes glass the brightest thing on a
brightfield slide, while a fluorescence slide is black wherever nothing glows. So, on the tissue
thumbnail:

- a dark background: at least ``MIN_DARK_SHARE`` of the pixels are darker than ``DARK_LUMA``, and
- nothing bright-field-like in the rest: under ``MAX_BRIGHT_SHARE`` of the pixels that are not dark
  are brighter than ``BRIGHT_LUMA`` (glass, and most stained tissue, are).

Counting bright pixels among the non-dark ones only keeps brightfield slides with big black
scanner margins (some scanners fill unscanned areas with black) on the brightfield side. Measured
on the real data: the H&E slides have 54-77 % bright pixels and < 1 % dark ones; the 37 H&E
patches without any glass have 2.3-97 % bright and at most 18 % dark pixels (so both conditions
are needed: dense debris alone is nearly as dark as fluorescence signal); fluorescence-like
conversions of the H&E slides have 68 % dark and 0 % bright pixels. A fluorescence scan of tissue
that fills the whole field (no dark background) is not caught: the check errs on the side of tiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DARK_LUMA = 50  # of 255: background of a fluorescence scan, black scanner margins
BRIGHT_LUMA = 150  # of 255: glass and most stained tissue under transmitted light
MIN_DARK_SHARE = 0.25
MAX_BRIGHT_SHARE = 0.02


@dataclass(frozen=True)
class BrightfieldCheck:
    """Background statistics of a thumbnail and the verdict drawn from them."""

    dark_share: float  # of all pixels
    bright_share: float  # of the pixels that are not dark

    @property
    def is_brightfield(self) -> bool:
        return not (self.dark_share >= MIN_DARK_SHARE and self.bright_share < MAX_BRIGHT_SHARE)

    def reason(self) -> str:
        """Why the slide is not tiled, with the numbers, for slides.parquet."""
        return (
            f"not a brightfield slide: dark background ({self.dark_share:.0%} of the thumbnail is darker "
            f"than {DARK_LUMA}/255 and only {self.bright_share:.1%} of the rest is brighter than "
            f"{BRIGHT_LUMA}/255, where brightfield glass is bright); it looks like a fluorescence scan, "
            "which the H&E tissue mask and models do not fit. Set tile.allow_non_brightfield "
            "(--allow-non-brightfield) to tile it anyway"
        )


def check_brightfield(rgb: np.ndarray) -> BrightfieldCheck:
    """Background statistics of an RGB ``uint8`` thumbnail (h, w, 3)."""
    import cv2

    if rgb.size == 0:
        return BrightfieldCheck(dark_share=0.0, bright_share=1.0)
    luma = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    dark = luma < DARK_LUMA
    rest = luma[~dark]
    bright_share = float((rest > BRIGHT_LUMA).mean()) if rest.size else 0.0
    return BrightfieldCheck(dark_share=float(dark.mean()), bright_share=bright_share)
