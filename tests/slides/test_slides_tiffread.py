"""The decode-only TIFF path gives OpenSlide's pixels, and is used only where it applies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathgen.slides import open_slide


def _openslide_rgb(path: Path, loc: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    import openslide

    rgba = np.asarray(openslide.OpenSlide(str(path)).read_region(loc, level, size))
    return np.where(rgba[..., 3:4] == 0, 255, rgba[..., :3]).astype(np.uint8)


@pytest.mark.parametrize("fixture", ["cmu_small", "tcga_jp2k", "built_slide"])
def test_level0_pixels_equal_openslide(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    slide = open_slide(path).open()
    assert slide.backend._fast is not None and slide.backend._fast.has_level(0)
    w, h = slide.dimensions
    for loc, size in [
        ((0, 0), (300, 200)),
        ((w // 2 - 7, h // 3 + 5), (672, 500)),
        ((w - 100, h - 50), (256, 256)),
    ]:
        np.testing.assert_array_equal(slide.read_region(loc, 0, size), _openslide_rgb(path, loc, 0, size))
    slide.close()


def test_pyramid_levels_equal_openslide_on_aligned_coordinates(built_slide: Path) -> None:
    slide = open_slide(built_slide)
    for level in (1, 2):
        ds = int(slide.level_downsamples[level])
        loc = (1344 * 2, 672 * 3)  # multiples of the downsample: no sub-pixel shift in OpenSlide
        assert loc[0] % ds == 0 and loc[1] % ds == 0
        np.testing.assert_array_equal(
            slide.read_region(loc, level, (336, 336)), _openslide_rgb(built_slide, loc, level, (336, 336))
        )


def test_forced_tiffslide_has_no_fast_path(cmu_small: Path) -> None:
    slide = open_slide(cmu_small, reader="tiffslide")
    assert not hasattr(slide.backend, "_fast")
    assert slide.read_region((10, 10), 0, (20, 20)).shape == (20, 20, 3)
