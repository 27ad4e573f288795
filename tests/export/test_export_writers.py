"""The dataset writers on real H&E patches: shards, index, released JSON, card, gallery."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_testkit import caption_record, crc_pairs
from PIL import Image

from pathgen.export.dataset import write_dataset
from pathgen.export.records import build_meta, exportable, normalise_edits, released_record
from pathgen.export.shards import safe_key, tile_key
from pathgen.export.stage import select_records
from pathgen.export.text import clip_token_count, word_count


def _write(out: Path, pairs, per_shard: int = 5) -> dict:
    return write_dataset(out, iter(pairs), title="t", per_shard=per_shard, expected=len(pairs), released=True)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def test_keys_are_webdataset_safe_and_stable():
    assert tile_key("CMU-1-Small-Region", 0, 672, 672) == "CMU-1-Small-Region_0_672_672"
    k1 = safe_key("TCGA-AA-0001-01Z-00-DX1.ABCDEF")
    assert "." not in k1 and k1 == safe_key("TCGA-AA-0001-01Z-00-DX1.ABCDEF")
    assert safe_key("a.b") != safe_key("a_b"), "lossy sanitising must not collide with a clean id"
    assert safe_key("../../etc/passwd").startswith("etc_passwd")
    assert len(safe_key("x" * 500)) <= 120


def test_shards_index_json_and_determinism(crc_patches, tmp_path):
    pairs = crc_pairs(crc_patches, n=12)
    summary = _write(tmp_path / "a", pairs)
    assert summary["pairs"] == 12 and summary["shards"] == 3 and summary["shards_written"] == 3
    shards = tmp_path / "a" / "shards"
    assert json.loads((shards / "sizes.json").read_text()) == {"00000.tar": 5, "00001.tar": 5, "00002.tar": 2}
    with tarfile.open(shards / "00000.tar") as tar:
        names = tar.getnames()
        first = pairs[0].meta["key"]
        assert names[:3] == [f"{first}.jpg", f"{first}.json", f"{first}.txt"]
        assert {m.mtime for m in tar.getmembers()} == {1704067200}
        meta = json.loads(tar.extractfile(f"{first}.json").read())
        caption = tar.extractfile(f"{first}.txt").read().decode()
        image = Image.open(io.BytesIO(tar.extractfile(f"{first}.jpg").read()))
    assert caption == pairs[0].meta["caption"] and meta["caption"] == caption
    assert meta["models"] == {"describe": "tiny", "revise": "tiny", "summarize": "tiny"}
    assert json.loads(meta["edits"])[0]["type"] == "modification" and meta["revised"].startswith("Revised")
    assert json.loads(meta["flags"]) == [] and meta["mpp_source"] == "metadata"
    assert meta["project"] == "TCGA-COAD" and meta["mpp"] == 0.5 and image.size == (224, 224)

    index = pq.read_table(tmp_path / "a" / "index.parquet").to_pylist()
    assert [r["key"] for r in index] == [p.meta["key"] for p in pairs]
    assert index[7]["shard"] == "00001.tar" and index[0]["source"] == "pathgen"
    assert index[0]["n_words"] == word_count(pairs[0].meta["caption"])
    assert index[0]["n_clip_tokens"] == clip_token_count(pairs[0].meta["caption"]) > index[0]["n_words"]

    released = json.loads((tmp_path / "a" / "pathgen.json").read_text())
    assert released[1] == {
        "wsi_id": pairs[1].meta["wsi_id"],
        "position": ["672", "0"],
        "caption": pairs[1].meta["caption"],
        "file_id": "file-1",
    }

    # Same pairs again: identical bytes, every shard kept; another folder: identical bytes too.
    before = _digests(shards)
    again = _write(tmp_path / "a", crc_pairs(crc_patches, n=12))
    assert again["shards_kept"] == 3 and again["shards_written"] == 0 and _digests(shards) == before
    _write(tmp_path / "b", crc_pairs(crc_patches, n=12))
    assert _digests(tmp_path / "b" / "shards") == before
    # Fewer pairs: the stale third shard disappears.
    _write(tmp_path / "a", crc_pairs(crc_patches, n=7))
    assert sorted(p.name for p in shards.glob("*.tar")) == ["00000.tar", "00001.tar"]


def test_card_and_gallery(crc_patches, tmp_path):
    pairs = crc_pairs(crc_patches, n=8)
    _write(tmp_path, pairs)
    card = (tmp_path / "README.md").read_text()
    assert "8 image-caption pairs from 2 slide(s)" in card
    assert "| TCGA-COAD | 4 |" in card and "| modification | 4 |" in card
    assert "| describe | tiny | 8 |" in card and "CLIP tokens" in card and "## Licence" in card
    for png in ("caption_words.png", "caption_clip_tokens.png"):
        assert Image.open(tmp_path / "card" / png).format == "PNG"
    html = (tmp_path / "gallery.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 8 and "<script src" not in html and "http" not in html


def test_gallery_escapes_markup(crc_patches, tmp_path):
    pairs = crc_pairs(crc_patches, n=1)
    pairs[0].meta["caption"] = "</script><img src=x onerror=alert(1)> & more"
    _write(tmp_path, pairs)
    html = (tmp_path / "gallery.html").read_text()
    assert "</script><img" not in html and "onerror=alert(1)>" not in html


def test_record_rules():
    slides = {"s1": {"path": "x"}}
    records = [
        caption_record("s1", 672, 0),
        caption_record("s1", 0, 0),
        caption_record("s1", 0, 672, status="rejected"),
        caption_record("s1", 0, 1344, caption="  "),
        caption_record("s2", 0, 0),
        caption_record("s1", 1344, 0, status="truncated"),
    ]
    kept, skipped = select_records(records, slides)
    assert [(r["x"], r["y"]) for r in kept] == [(0, 0), (672, 0), (1344, 0)]
    assert skipped == {"status_rejected": 1, "empty_caption": 1, "slide_not_in_slides_parquet": 1}
    assert exportable({"status": "ok", "caption": "x"}) is None
    meta = build_meta(records[0], {"mpp": float("nan")}, 336)
    assert meta["mpp"] == 0.0 and meta["mpp_source"] == "none" and meta["file_id"] is None
    assert meta["image_size"] == 336
    assert released_record(meta) == {"wsi_id": "s1", "position": ["672", "0"], "caption": meta["caption"]}
    assert normalise_edits({"edits": [{"kind": "Addition", "new": "x"}, "plain"]}) == [
        {"type": "addition", "before": None, "after": "x"},
        {"type": "unknown", "before": None, "after": "plain"},
    ]


@pytest.mark.parametrize("text,words", [("", 0), ("one two  three", 3)])
def test_word_count(text, words):
    assert word_count(text) == words
    assert clip_token_count(text) == 2 + (0 if not text else 3)
