"""The audit's measures on real texts and real pixels: captions, report findings, site shortcuts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pathgen.audit.caption_quality import near_duplicates, refusal_hits, unseen_findings
from pathgen.audit.flags import check_flags, flagged_tiles
from pathgen.audit.patch_quality import blockiness, patch_metrics
from pathgen.audit.shortcuts import parse_barcode, site_leakage, site_terms
from pathgen.config import REFUSAL_PHRASES, ExportConfig


@pytest.fixture(scope="module")
def captions(pathgen_captions) -> list[str]:
    data = json.loads(pathgen_captions.read_text())
    return [r["caption"] for r in data[:400]]


def test_near_duplicates_find_a_light_rewording_among_real_captions(captions):
    base = captions[:200]
    reworded = base[17].replace(".", " .", 1) + " Noted."
    found = near_duplicates([*base, reworded], threshold=0.8)
    assert (17, 200) in [(i, j) for i, j, _ in found]
    assert all(s >= 0.8 for *_, s in found) and len(found) < 5  # distinct real captions are not
    same = near_duplicates(["Tumour  cells.", "x y z w", "tumour cells."] * 3)
    assert [(i, j) for i, j, _ in same if i == 0] == [(0, 2), (0, 3), (0, 5), (0, 6), (0, 8)]


def test_refusals_and_report_findings():
    assert refusal_hits("I'm sorry, but I cannot describe this image.", REFUSAL_PHRASES) == [
        "i'm sorry", "i cannot",
    ]  # fmt: skip
    assert refusal_hits("Sheets of atypical squamous cells.", REFUSAL_PHRASES) == []
    findings = ["Keratin pearls are present.", "The tumour is surrounded by desmoplastic stroma."]
    description = "Nests of squamous cells in a fibrous stroma."
    assert unseen_findings("Squamous nests with keratin pearls.", description, findings) == [
        "keratin",
        "pearls",
    ]
    assert unseen_findings("Squamous nests in stroma.", description, findings) == []
    assert unseen_findings("Keratin pearls.", description + " Keratin pearls.", findings) == []


def test_tcga_barcodes():
    assert parse_barcode("tcga-cr-7395-01a-01-ts1").site == "CR"
    assert parse_barcode("TCGA-XK-AAJU-01Z-00-DX1.svs").patient == "TCGA-XK-AAJU"
    assert parse_barcode("CMU-1-Small-Region") is None


def test_site_leakage_probe_against_chance(crc_patches):
    """Real patches as features (8x8 thumbnails): when one site's patches carry a stain shift, the
    probe finds the site far above chance; the same patches with sites unrelated to the shift stay
    near chance."""
    from PIL import Image

    images = [
        np.asarray(Image.open(p).convert("RGB").resize((8, 8)), np.float32) / 255
        for p in sorted(crc_patches.glob("*/*.png"))
    ]
    stain = np.array([0.8, 0.95, 1.1], np.float32)  # the other site's eosin is paler and bluer
    x = np.stack([im.ravel() for im in images] + [np.clip(im * stain, 0, 1).ravel() for im in images])
    sites = ["A2"] * len(images) + ["BH"] * len(images)
    leak = site_leakage(x, sites, folds=4)
    assert leak["chance"] == 0.5 and leak["accuracy"] >= 0.85 and leak["lift"] >= 1.7
    unrelated = ["A2", "BH"] * len(images)  # each site gets half the shifted patches
    assert site_leakage(x, unrelated, folds=4)["accuracy"] <= 0.7
    # by patient: each original and its shifted copy stand for a different patient of its site
    patients = [f"A2-{i % 4}" for i in range(len(images))] + [f"BH-{i % 4}" for i in range(len(images))]
    grouped = site_leakage(x, sites, folds=4, groups=patients)
    assert grouped["split"] == "patient" and grouped["accuracy"] >= 0.85
    single = site_leakage(x, sites, folds=4, groups=["A2-0"] * len(images) + ["BH-0"] * len(images))
    assert single["split"] == "patch" and "one patient" in single["note"]
    one = site_leakage(x, ["A2"] * len(x))
    assert one["accuracy"] is None and "two" in one["note"]


def test_site_terms_name_what_one_site_says():
    caps = ["keratin pearls and squamous nests"] * 4 + ["glandular mucin and squamous nests"] * 4
    terms = site_terms(caps, ["CR"] * 4 + ["A2"] * 4, min_count=2)
    assert terms["CR"][0][0] in {"keratin", "pearls"} and "squamous" not in [t for t, *_ in terms["CR"][:2]]
    assert {t for t, *_ in terms["A2"][:3]} >= {"glandular", "mucin"}


def test_blockiness_sees_heavy_jpeg(crc_patches):
    import io

    from PIL import Image

    img = Image.open(sorted(crc_patches.glob("TUM/*.png"))[0]).convert("RGB").resize((448, 448))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=8)
    heavy = np.asarray(Image.open(buf))
    assert (
        blockiness(np.asarray(img.convert("L")))
        < 1.3
        < blockiness(np.asarray(Image.fromarray(heavy).convert("L")))
    )
    assert patch_metrics(heavy)["blockiness"] > 1.6


def test_flag_names_are_checked(tmp_path):
    assert ExportConfig(drop_flags="blur, pen").drop_flags == ["blur", "pen"]
    with pytest.raises(ValueError, match="unknown audit flag 'blurr'"):
        ExportConfig(drop_flags=["blurr"])
    assert check_flags(["", "jpeg"]) == ["jpeg"]
    with pytest.raises(FileNotFoundError, match="pathgen audit"):
        flagged_tiles(tmp_path, ["pen"])
