"""Fluorescence (dark background) slides are recognised and skipped unless the user forces tiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pathgen.config import TileConfig
from pathgen.rundir import RunDir
from pathgen.slides import open_slide
from pathgen.slides.brightfield import check_brightfield
from pathgen.slides.stage import tile_stage


def test_fluorescence_slide_is_skipped_with_the_reason(
    fluorescence_slide: Path, cmu_small: Path, tmp_path: Path
) -> None:
    summary = tile_stage([str(fluorescence_slide), str(cmu_small)], RunDir(tmp_path), TileConfig(workers=1))
    rows = {r["slide_id"]: r for r in summary["slides"]}
    fl = rows["fluorescence-cmu"]
    assert fl["status"] == "skipped" and fl["n_tiles"] == 0, fl
    assert "not a brightfield slide" in fl["error"] and "--allow-non-brightfield" in fl["error"]
    assert fl["width"] == 2220 and fl["reader"] == "openslide"  # it was opened and looked at
    assert rows["CMU-1-Small-Region"]["status"] == "ok"
    assert summary["skipped_slides"] == 1 and summary["done"] == 1
    ids = set(pq.read_table(tmp_path / "tiles.parquet").column("slide_id").to_pylist())
    assert ids == {"CMU-1-Small-Region"}


def test_allow_non_brightfield_tiles_it_with_a_warning(fluorescence_slide: Path, tmp_path: Path) -> None:
    from pathgen.cli import app

    result = CliRunner().invoke(
        app,
        [
            "tile",
            str(fluorescence_slide),
            "--out",
            str(tmp_path),
            "--workers",
            "1",
            "--allow-non-brightfield",
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(tmp_path / "slides.parquet").to_pylist()
    assert row["status"] == "ok" and row["n_tiles"] > 0
    assert "not brightfield" in row["warning"] and "allow_non_brightfield" in row["warning"]
    result = CliRunner().invoke(app, ["tile", str(fluorescence_slide), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "no slide was tiled" in result.output  # the default skips it


@pytest.mark.parametrize("fixture", ["cmu_small", "tcga_jp2k", "built_slide"])
def test_real_he_slides_are_brightfield(fixture: str, request: pytest.FixtureRequest) -> None:
    with open_slide(request.getfixturevalue(fixture)) as slide:
        thumb = slide.thumbnail_array(32)
    check = check_brightfield(thumb)
    assert check.is_brightfield and check.bright_share > 0.5, check
    # Black scanner margins over three quarters of the slide do not make it fluorescence.
    padded = np.zeros((thumb.shape[0] * 2, thumb.shape[1] * 2, 3), dtype=np.uint8)
    padded[: thumb.shape[0], : thumb.shape[1]] = thumb
    check = check_brightfield(padded)
    assert check.dark_share > 0.7 and check.is_brightfield, check


def test_real_he_patches_without_glass_are_brightfield(crc_patches: Path, unlabeled_patches: Path) -> None:
    from PIL import Image

    files = sorted(crc_patches.rglob("*.png")) + sorted(unlabeled_patches.iterdir())
    assert len(files) >= 30
    for f in files:
        with Image.open(f) as im:
            check = check_brightfield(np.asarray(im.convert("RGB")))
        assert check.is_brightfield, (f.name, check)


def test_fluorescence_thumbnail_statistics(fluorescence_slide: Path) -> None:
    with open_slide(fluorescence_slide) as slide:
        check = check_brightfield(slide.thumbnail_array(32))
    assert not check.is_brightfield and check.dark_share > 0.5 and check.bright_share < 0.01
    assert f"{check.dark_share:.0%} of the thumbnail is darker" in check.reason()
