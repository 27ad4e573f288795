"""Materialising released PathGen records from the real sample slides, checked against direct reads."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pathgen.export.materialise import SlideFinder, materialise
from pathgen.slides import open_slide

TCGA_ID = "TCGA-CR-7395-01A-01-TS1.0C8F3A5E-1D2B-4A6C-9E7F-123456789ABC"


def test_slide_finder_matches_tcga_barcodes(slides_dir, tmp_path):
    finder = SlideFinder(slides_dir)
    assert finder.find(TCGA_ID)[0].name == "tcga-cr-7395-01a-01-ts1.svs"
    assert finder.find("CMU-1-Small-Region")[0].name == "CMU-1-Small-Region.svs"
    assert finder.find("TCGA-ZZ-0000-01Z-00-DX1.X") == (None, "slide_not_found")
    gdc = tmp_path / "0f1e2d3c-file-id"
    gdc.mkdir()
    (gdc / "renamed.svs").write_bytes(b"")
    assert SlideFinder(tmp_path).find("anything", file_id="0F1E2D3C-file-id")[0] == gdc / "renamed.svs"


def test_materialise_real_slides(slides_dir, cmu_small, tcga_jp2k, tmp_path):
    records = [
        {
            "wsi_id": "CMU-1-Small-Region",
            "position": ["672", "1344"],
            "caption": "Skin: dermis with collagen.",
        },
        {
            "wsi_id": "CMU-1-Small-Region",
            "position": ["0", "0"],
            "caption": "Epidermis and dermis.",
            "file_id": "f1",
        },
        {"wsi_id": "CMU-1-Small-Region", "position": ["2000", "0"], "caption": "Outside on the right."},
        {"wsi_id": TCGA_ID, "position": ["1344", "1344"], "caption": "Frozen section of squamous carcinoma."},
        {"wsi_id": "TCGA-ZZ-0000-01Z-00-DX1.X", "position": ["0", "0"], "caption": "No such slide."},
        {"wsi_id": "CMU-1-Small-Region", "position": ["-5", "0"], "caption": "Negative."},
        {"wsi_id": "CMU-1-Small-Region", "position": ["0", "0"], "caption": "Listed twice."},
    ]
    src = tmp_path / "pathgen.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "out"
    report = materialise(src, slides_dir, out, per_shard=2, workers=2)
    assert report["records"] == 7 and report["done"] == 4 and report["skipped"] == 3
    assert report["skipped_by_reason"] == {"position_outside_slide": 2, "slide_not_found": 1}
    errors = json.loads((out / "errors.json").read_text())
    assert sorted(e["record"] for e in errors) == [2, 4, 5]

    index = pq.read_table(out / "index.parquet").to_pylist()
    assert len(index) == 4 and {r["source"] for r in index} == {"pathgen-release"}
    assert len({r["key"] for r in index}) == 4, "a patch listed twice still gets two distinct keys"
    released = json.loads((out / "pathgen.json").read_text())
    assert {
        "wsi_id": "CMU-1-Small-Region",
        "position": ["0", "0"],
        "caption": "Epidermis and dermis.",
        "file_id": "f1",
    } in released

    expected = {
        "CMU-1-Small-Region_0_0_672": (cmu_small, 0, 0),
        "CMU-1-Small-Region_672_1344_672": (cmu_small, 672, 1344),
    }
    tcga_key = next(r["key"] for r in index if r["slide_id"] == TCGA_ID)
    expected[tcga_key] = (tcga_jp2k, 1344, 1344)
    seen = set()
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if not member.name.endswith(".jpg"):
                    continue
                key = member.name[:-4]
                path, x, y = expected[key.removesuffix("_r6")]
                got = np.asarray(
                    Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"), np.int16
                )
                with open_slide(path) as slide:
                    direct = slide.read_region((x, y), 0, (672, 672)).astype(np.int16)
                assert got.shape == direct.shape == (672, 672, 3)
                assert np.abs(got - direct).mean() < 2.5, key  # JPEG q95 of the same pixels
                assert direct.std() > 5, "the patch must hold tissue, not flat background"
                seen.add(key)
    assert seen == {*expected, "CMU-1-Small-Region_0_0_672_r6"}


def test_a_release_with_nothing_to_materialise_leaves_the_previous_dataset(slides_dir, cmu_small, tmp_path):
    import pytest

    from pathgen.export.stage import ExportError

    good = [{"wsi_id": "CMU-1-Small-Region", "position": ["0", "0"], "caption": "Epidermis and dermis."}]
    src, out = tmp_path / "good.json", tmp_path / "out"
    src.write_text(json.dumps(good))
    assert materialise(src, slides_dir, out, per_shard=2)["done"] == 1
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"wsi_id": "TCGA-ZZ-0000-01Z-00-DX1.X", "position": ["0", "0"], "caption": "x"}])
    )
    with pytest.raises(ExportError, match="left as it was"):
        materialise(bad, slides_dir, out, per_shard=2)
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before
