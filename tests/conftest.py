"""Shared fixtures: where the real data lives, and skips that say why when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathgen.sample_data import candidates, shared_data

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data() or candidates()[0]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set PATHGEN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def slides_dir(shared_data: Path) -> Path:
    return _need(shared_data / "slides")


@pytest.fixture(scope="session")
def cmu_small(slides_dir: Path) -> Path:
    return _need(slides_dir / "CMU-1-Small-Region.svs")


@pytest.fixture(scope="session")
def tcga_jp2k(slides_dir: Path) -> Path:
    return _need(slides_dir / "tcga-cr-7395-01a-01-ts1.svs")


@pytest.fixture(scope="session")
def dicom_slide(slides_dir: Path) -> Path:
    return _need(slides_dir / "TCGA-XK-AAJU-small.dcm")


@pytest.fixture(scope="session")
def crc_patches(shared_data: Path) -> Path:
    return _need(shared_data / "patches" / "crc-val-he-7k")


@pytest.fixture(scope="session")
def unlabeled_patches(shared_data: Path) -> Path:
    return _need(shared_data / "patches" / "unlabeled")


@pytest.fixture(scope="session")
def pathgen_captions(shared_data: Path) -> Path:
    return _need(shared_data / "captions" / "pathgen-1.6m-sample.json")
