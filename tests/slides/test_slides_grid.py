"""Tissue mask and tile grid on controlled images: thresholds, bounds, physical sizes."""

from __future__ import annotations

import numpy as np
import pytest

from pathgen.slides.grid import grid_tiles, resolve_geometry
from pathgen.slides.tissue import TissueMask, tissue_mask_from_rgb


def _mask(mask: np.ndarray, ds: float) -> TissueMask:
    return TissueMask(
        mask=mask,
        thumbnail=np.zeros((*mask.shape, 3), np.uint8),
        downsample_x=ds,
        downsample_y=ds,
        threshold=0,
    )


def test_grid_keeps_tiles_at_or_above_threshold_and_inside_bounds() -> None:
    mask = np.zeros((100, 120), dtype=bool)  # slide 3840 x 3200 at 32x
    mask[10:60, 20:90] = True
    tm = _mask(mask, 32.0)
    xs, ys, frac = grid_tiles((3840, 3200), 320, tm, 0.5)
    assert len(xs) > 0
    assert np.all(frac >= 0.5)
    assert np.all((xs >= 0) & (xs + 320 <= 3840) & (ys >= 0) & (ys + 320 <= 3200))
    assert np.all(xs % 320 == 0) and np.all(ys % 320 == 0)
    order = np.lexsort((xs, ys))
    assert np.array_equal(order, np.arange(len(xs)))  # sorted by (y, x)
    # the tissue box spans x 640..2880, y 320..1920 in level-0 px: tiles fully inside it are kept
    assert (640, 320) in set(zip(xs.tolist(), ys.tolist(), strict=True))
    assert all(x >= 640 - 160 and x + 320 <= 2880 + 160 for x in xs.tolist())


def test_grid_fraction_is_exact_on_aligned_masks() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:2, 0:1] = True  # a quarter of the first 2x2-pixel tile
    xs, _, frac = grid_tiles((20, 20), 4, _mask(mask, 2.0), 0.0)
    assert len(xs) == 25
    assert frac[0] == pytest.approx(0.5)
    xs, _, _ = grid_tiles((20, 20), 4, _mask(mask, 2.0), 0.51)
    assert len(xs) == 0


def test_grid_on_100k_slide_is_fast() -> None:
    import time

    rng = np.random.default_rng(0)
    mask = rng.random((3125, 3125)) > 0.4
    t0 = time.perf_counter()
    xs, _, _ = grid_tiles((100_000, 100_000), 672, _mask(mask, 32.0), 0.5)
    assert time.perf_counter() - t0 < 2.0  # ~0.05 s on an idle core
    assert 0 < len(xs) <= (100_000 // 672) ** 2


def test_geometry_physical_size_follows_mpp() -> None:
    g = resolve_geometry(0.25, 224, mpp=0.5)
    assert (g.size, g.mpp_source, g.warning) == (448, "metadata", None)
    assert resolve_geometry(0.499, 224, mpp=0.5).size == 224
    assumed = resolve_geometry(None, 224, mpp=0.5, assume_mpp=0.25)
    assert assumed.size == 448 and assumed.mpp_source == "assumed" and "assumed 0.25" in assumed.warning


def test_geometry_without_mpp_tiles_level0_and_warns() -> None:
    g = resolve_geometry(None, 224, mpp=0.5)
    assert g.size == 224 and g.mpp is None and g.mpp_source == "none"
    assert "no mpp" in g.warning and "level 0" in g.warning
    plain = resolve_geometry(None, 672)
    assert plain.size == 672 and "no mpp" in plain.warning


def _he_blob(shape: tuple[int, int], background: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((*shape, 3), dtype=np.uint8)
    img[:] = background
    h, w = shape
    rng = np.random.default_rng(0)
    tissue = rng.normal((190, 120, 180), 12, size=(h // 2, w // 2, 3)).clip(0, 255).astype(np.uint8)
    img[h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = tissue
    return img


@pytest.mark.parametrize("background", [(245, 245, 245), (0, 0, 0), (20, 20, 25)])
def test_mask_finds_tissue_on_white_and_black_backgrounds(background: tuple[int, int, int]) -> None:
    mask, _ = tissue_mask_from_rgb(_he_blob((200, 240), background))
    assert mask[100, 120]  # centre is tissue
    assert not mask[5, 5] and not mask[195, 235]  # corners are background
    assert 0.2 < mask.mean() < 0.3  # the blob is a quarter of the image


def test_mask_of_glass_is_empty() -> None:
    rng = np.random.default_rng(0)
    glass = rng.normal(240, 3, size=(150, 150, 3)).clip(0, 255).astype(np.uint8)
    mask, _ = tissue_mask_from_rgb(glass)
    assert not mask.any()


def test_mask_ignores_green_and_blue_pen_ink() -> None:
    img = _he_blob((200, 240), (245, 245, 245))
    img[10:30, 10:200] = (30, 160, 60)  # green marker stroke on glass
    img[170:190, 10:200] = (20, 40, 170)  # blue marker stroke on glass
    mask, _ = tissue_mask_from_rgb(img)
    assert not mask[20, 100] and not mask[180, 100]
    assert mask[100, 120]
