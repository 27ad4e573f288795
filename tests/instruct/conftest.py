"""A run's export built from real data: CRC patch pixels and released PathGen captions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pathgen.export.shards import Sample, tile_key, write_shard


def make_export(run: Path, crc: Path, captions: Path, n: int, per_shard: int = 50) -> Path:
    """``RUN/export/shards/*.tar`` with ``n`` pairs, as `pathgen export` writes them."""
    records = json.loads(captions.read_text(encoding="utf-8"))
    images = sorted(crc.glob("*/*.png"))
    samples = []
    for i in range(n):
        rec = records[i]
        x, y = (int(v) for v in rec["position"])
        buf = io.BytesIO()
        Image.open(images[i % len(images)]).convert("RGB").save(buf, "JPEG", quality=90)
        key = tile_key(rec["wsi_id"], x, y, 672)
        meta = {
            "key": key,
            "wsi_id": rec["wsi_id"],
            "x": x,
            "y": y,
            "size": 672,
            "project": "TCGA-" + ("COAD" if i % 2 else "HNSC"),
            "file_id": "",
            "caption": rec["caption"],
            "description": rec["caption"],
            "revised": rec["caption"],
        }
        samples.append(Sample(key, buf.getvalue(), rec["caption"], meta))
    shards = run / "export" / "shards"
    shards.mkdir(parents=True)
    for s in range(0, n, per_shard):
        write_shard(shards / f"{s // per_shard:05d}.tar", samples[s : s + per_shard])
    return run


@pytest.fixture
def export_of(tmp_path: Path, crc_patches: Path, pathgen_captions: Path):
    """``export_of(n)``: a run folder with ``n`` exported pairs."""
    return lambda n: make_export(tmp_path / f"run{n}", crc_patches, pathgen_captions, n)


@pytest.fixture
def demo_export(tmp_path: Path, crc_patches: Path, pathgen_captions: Path) -> Path:
    return make_export(tmp_path / "run", crc_patches, pathgen_captions, 12)
