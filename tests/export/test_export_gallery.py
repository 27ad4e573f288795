"""gallery.html in a real headless Chromium: patches load, pages, project filter and text search work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from export_testkit import crc_pairs

from browser import chromium, needs_chromium
from pathgen.export.dataset import write_dataset

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = needs_chromium


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    return chromium(tmp_path / "chrome-profile", url, *extra)


@pytest.fixture(scope="module")
def gallery(crc_patches, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gallery")
    pairs = crc_pairs(crc_patches, n=30)
    write_dataset(out, iter(pairs), title="gallery test", per_shard=10, expected=30, page_size=12)
    return out / "gallery.html"


def _cards(dom: str) -> list[str]:
    return re.findall(r'<div class="card" data-key="([^"]+)"', dom)


def test_gallery_renders_with_patches(gallery, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "gallery.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, gallery.as_uri(), f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 50_000, "screenshot missing or blank"

    dom = _chromium(tmp_path, gallery.as_uri(), "--dump-dom")
    keys = _cards(dom)
    assert len(keys) == 12, "first page shows page_size cards"
    imgs = re.findall(r"<img[^>]*>", dom)
    assert len(imgs) == 12 and all('data-loaded="1"' in i for i in imgs), "every patch image loaded"
    assert all('src="data:image/jpeg;base64,' in i for i in imgs)
    assert "page 1 / 3 · 30 of 30 pairs" in dom


def test_gallery_filters_and_pages(gallery, tmp_path):
    # "Patch number 2" matches patches 2 and 20-29; TCGA-COAD holds the even ones: 2, 20, 22, ..., 28.
    dom = _chromium(tmp_path, gallery.as_uri() + "#q=Patch%20number%202&project=TCGA-COAD", "--dump-dom")
    captions = re.findall(r'<div class="cap">([^<]*)</div>', dom)
    assert len(captions) == 6 and all("Patch number 2" in c for c in captions) and "6 of 30 pairs" in dom
    dom = _chromium(tmp_path, gallery.as_uri() + "#page=3", "--dump-dom")
    assert len(_cards(dom)) == 6 and "page 3 / 3" in dom
