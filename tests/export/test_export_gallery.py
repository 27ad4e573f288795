"""gallery.html in a real headless Chromium: patches load, pages, project filter and text search work."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from export_testkit import crc_pairs

from pathgen.export.dataset import write_dataset

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--window-size=1280,1000",
        *extra,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


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
