"""Opening real slides through every backend, mpp, pickling, and reading tiles via the pyramid."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from pathgen.slides import SlideOpenError, choose_level, open_slide, read_tile, read_tile_array


@pytest.mark.parametrize("reader", ["auto", "openslide", "tiffslide"])
def test_cmu_svs_opens_with_mpp(cmu_small: Path, reader: str) -> None:
    with open_slide(cmu_small, reader=reader) as slide:
        assert slide.dimensions == (2220, 2967)
        assert slide.mpp == pytest.approx(0.499)
        assert slide.vendor == "aperio"
        assert slide.reader == ("openslide" if reader == "auto" else reader)
        region = slide.read_region((100, 200), 0, (64, 48))
        assert region.shape == (48, 64, 3) and region.dtype == np.uint8
        assert 50 < region.mean() < 250  # real stained pixels, not a blank fill
        thumb = slide.get_thumbnail((200, 200))
        assert thumb.mode == "RGB" and max(thumb.size) == 200


def test_backends_agree_on_pixels(cmu_small: Path) -> None:
    a = open_slide(cmu_small, reader="openslide").read_region((500, 700), 0, (128, 128))
    b = open_slide(cmu_small, reader="tiffslide").read_region((500, 700), 0, (128, 128))
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0  # same JPEG, decoders may round differently


def test_tcga_jpeg2000_has_no_mpp(tcga_jp2k: Path) -> None:
    slide = open_slide(tcga_jp2k)
    assert slide.mpp is None
    assert slide.level_count == 2
    assert slide.level_downsamples[1] == pytest.approx(2.0, abs=0.01)


def test_dicom_outcome_is_explained(dicom_slide: Path) -> None:
    slide = open_slide(dicom_slide)
    with pytest.raises(SlideOpenError) as info:
        slide.open()
    msg = str(info.value)
    assert "wsidicom" in msg and "ImageType" in msg and "conformant" in msg


def test_slide_is_lazy_and_picklable(cmu_small: Path) -> None:
    slide = open_slide(cmu_small, slide_id="cmu")
    assert slide._backend is None  # nothing opened yet
    assert slide.dimensions == (2220, 2967)
    clone = pickle.loads(pickle.dumps(slide))
    assert clone._backend is None and clone.slide_id == "cmu" and clone.requested_reader == "openslide"
    np.testing.assert_array_equal(
        clone.read_region((0, 0), 0, (32, 32)), slide.read_region((0, 0), 0, (32, 32))
    )
    slide.close()
    clone.close()


def test_unknown_reader_lists_valid_ones(cmu_small: Path) -> None:
    with pytest.raises(ValueError, match="openslide, tiffslide, wsidicom"):
        open_slide(cmu_small, reader="bioformats")


def test_built_slide_is_a_real_pyramid(built_slide: Path) -> None:
    import openslide

    raw = openslide.OpenSlide(str(built_slide))
    assert raw.properties["openslide.vendor"] == "generic-tiff"
    assert float(raw.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    slide = open_slide(built_slide)
    assert slide.dimensions == (8192, 6144)
    assert slide.level_count >= 3
    assert slide.level_downsamples[:3] == pytest.approx((1.0, 2.0, 4.0))
    assert slide.mpp == pytest.approx(0.5)


def test_read_tile_uses_the_pyramid_and_matches_a_direct_read(built_slide: Path) -> None:
    import cv2

    slide = open_slide(built_slide)
    assert choose_level(slide, 672, 672) == 0
    assert choose_level(slide, 672, 336) == 1
    assert choose_level(slide, 672, 224) == 1  # downsample 3: level 2 (4x) would be below resolution
    assert choose_level(slide, 1344, 336) == 2
    x, y = 2048, 2048
    full = read_tile_array(slide, x, y, 672)
    np.testing.assert_array_equal(full, slide.read_region((x, y), 0, (672, 672)))
    half = read_tile_array(slide, x, y, 672, 336)
    np.testing.assert_array_equal(half, slide.read_region((x, y), 1, (336, 336)))
    from_level0 = cv2.resize(full, (336, 336), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - from_level0.astype(int)).mean() < 8  # same picture, other JPEG
    img = read_tile(str(built_slide), x, y, 672, 224)  # by path, cached handle
    assert img.size == (224, 224) and img.mode == "RGB"


def test_read_tile_on_single_level_slide_resizes_level0(cmu_small: Path) -> None:
    import cv2

    slide = open_slide(cmu_small)
    tile = read_tile_array(slide, 672, 672, 672, 224)
    direct = cv2.resize(
        slide.read_region((672, 672), 0, (672, 672)), (224, 224), interpolation=cv2.INTER_AREA
    )
    np.testing.assert_array_equal(tile, direct)


def test_read_tile_rejects_bad_sizes(cmu_small: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        read_tile(open_slide(cmu_small), 0, 0, 0)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("empty", r"empty file \(0 bytes\)"),
        ("png", "file is a PNG image"),
        ("text", "file is a text file"),
        ("missing", "file not found"),
    ],
)
def test_bad_files_fail_with_clear_messages(bad_inputs: dict[str, Path], kind: str, expected: str) -> None:
    with pytest.raises(SlideOpenError, match=expected):
        open_slide(bad_inputs[kind]).open()


def test_wsidicom_backend_reads_a_conformant_file(repaired_dicom: Path, tmp_path: Path) -> None:
    from pathgen.config import TileConfig
    from pathgen.rundir import RunDir
    from pathgen.slides.stage import tile_stage

    with open_slide(repaired_dicom) as slide:
        assert slide.reader == "wsidicom" and slide.vendor == "dicom"
        assert slide.dimensions == (3236, 2638) and slide.mpp == pytest.approx(0.5)
        region = slide.read_region((3000, 2500), 0, (400, 300))  # runs off the image: padded white
        assert region.shape == (300, 400, 3)
        assert (region[200:, 300:] == 255).all()
        assert region[:100, :200].std() > 0  # real pixels inside
        tile = read_tile_array(slide, 1000, 1000, 672, 224)
        assert tile.shape == (224, 224, 3)
    summary = tile_stage([str(repaired_dicom)], RunDir(tmp_path), TileConfig(workers=1))
    assert summary["slides"][0]["status"] in ("ok", "no_tissue")
    assert summary["slides"][0]["reader"] == "wsidicom"


def test_builder_command_line(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pathgen.slides.builder import main

    out = tmp_path / "cli.tif"
    main(
        [
            str(out),
            "--size",
            "3000",
            "--height",
            "2000",
            "--mpp",
            "0.25",
            "--tile",
            "256",
            "--sources",
            str(shared_data / "patches"),
        ]
    )
    assert "wrote" in capsys.readouterr().out
    slide = open_slide(out)
    assert slide.dimensions == (3000, 2000) and slide.mpp == pytest.approx(0.25) and slide.level_count >= 2
