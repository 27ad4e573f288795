"""Fixtures of the slides tests: a built pyramidal slide (once per session) and bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_slide(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """An 8192 x 6144 px pyramidal JPEG TIFF at 0.5 µm/px built from the real H&E patches."""
    from pathgen.slides.builder import build_pyramid_tiff, find_sources

    out = tmp_path_factory.mktemp("built") / "built-8k.tif"
    return build_pyramid_tiff(
        out, 8192, 6144, find_sources(shared_data / "patches"), mpp=0.5, tile=512, seed=1
    )


@pytest.fixture(scope="session")
def bad_inputs(
    tmp_path_factory: pytest.TempPathFactory, cmu_small: Path, crc_patches: Path
) -> dict[str, Path]:
    """Each bad input of the issue, as a file on disk."""
    root = tmp_path_factory.mktemp("bad")
    empty = root / "empty.svs"
    empty.write_bytes(b"")
    truncated = root / "truncated.svs"
    truncated.write_bytes(cmu_small.read_bytes()[:200_000])
    png = root / "png-named.svs"
    shutil.copy(next(crc_patches.rglob("*.png")), png)
    text = root / "text-named.svs"
    text.write_text("this is not a slide\n" * 20)
    nodir = root / "no-slides-here"
    nodir.mkdir()
    (nodir / "notes.txt").write_text("nothing")
    blank = root / "blank.tif"
    _blank_tiff(blank)
    return {
        "empty": empty,
        "truncated": truncated,
        "png": png,
        "text": text,
        "missing": root / "does-not-exist.svs",
        "empty_dir": nodir,
        "no_tissue": blank,
    }


def _blank_tiff(path: Path) -> None:
    """A real tiled TIFF slide of bare glass: readable, but without tissue."""
    import numpy as np
    import tifffile

    img = np.full((2048, 2048, 3), 244, dtype=np.uint8)
    tifffile.imwrite(
        path, img, tile=(256, 256), photometric="rgb", compression="jpeg",
        resolution=(20000, 20000), resolutionunit="CENTIMETER",
    )  # fmt: skip


@pytest.fixture(scope="session")
def repaired_dicom(tmp_path_factory: pytest.TempPathFactory, dicom_slide: Path) -> Path:
    """The shared DICOM plus the attributes wsidicom reported missing: a conformant WSI file.

    Proves the error message names the real cause, and exercises the wsidicom backend on real
    JPEG frames. The added pixel spacing (0.5 µm) is made up for the test.
    """
    import logging

    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    logging.getLogger("pydicom").setLevel(logging.ERROR)
    ds = pydicom.dcmread(dicom_slide)
    ds.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    ds.DimensionOrganizationType = "TILED_FULL"
    measures = Dataset()
    measures.PixelSpacing = [0.0005, 0.0005]
    measures.SliceThickness = 0.001
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    path = Dataset()
    path.OpticalPathIdentifier = "0"
    ds.OpticalPathSequence = Sequence([path])
    out = tmp_path_factory.mktemp("dicom") / "repaired.dcm"
    ds.save_as(out)
    return out


@pytest.fixture(scope="session")
def fluorescence_slide(tmp_path_factory: pytest.TempPathFactory, cmu_small: Path) -> Path:
    """A fluorescence-like pyramidal TIFF made of the real CMU-1 pixels: black where the glass was,
    a red 'TRITC' channel where eosin absorbs green light, a blue 'DAPI' one where hematoxylin
    absorbs red light. The old tile stage found 41 % tissue in it and tiled it as H&E."""
    import cv2
    import numpy as np
    import tifffile

    from pathgen.slides import open_slide

    with open_slide(cmu_small) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions).astype(np.float32)
    absorbed = 255.0 - rgb  # light the stain took away: bright where tissue is, ~0 on glass
    fluo = np.empty_like(rgb)
    fluo[..., 0] = absorbed[..., 1]  # cytoplasm and stroma (eosin): 'TRITC'
    fluo[..., 1] = 0.3 * absorbed[..., 0]
    fluo[..., 2] = 0.8 * absorbed[..., 0]  # nuclei (hematoxylin): 'DAPI'
    level0 = np.clip(fluo, 0, 255).astype(np.uint8)
    out = tmp_path_factory.mktemp("fluorescence") / "fluorescence-cmu.tif"
    with tifffile.TiffWriter(out) as tif:
        for k, img in enumerate(
            (level0, cv2.resize(level0, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
        ):
            tif.write(
                img, tile=(256, 256), photometric="rgb", compression="jpeg", subfiletype=0 if k == 0 else 1,
                resolution=(20000 / 2**k, 20000 / 2**k), resolutionunit="CENTIMETER", metadata=None,
            )  # fmt: skip
    return out
