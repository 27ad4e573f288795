"""Slides in object storage: a real S3 server on 127.0.0.1, the real sample slide uploaded to it.

The tile stage lists ``s3://bucket/prefix/`` through fsspec, reads the slides with tiffslide, and
records the URL; later stages read patches from that URL. The tiles must be the ones a local run
makes, and no credential may reach the run directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pathgen.config import RunConfig, TileConfig
from pathgen.records import TileRecord
from pathgen.rundir import RunDir
from pathgen.slides import read_tile_array
from pathgen.slides.manifest import InputError
from pathgen.slides.stage import tile_stage
from s3server import FAKE_ENV, Bucket, make_bucket

SMALL = TileConfig(size=256, workers=1)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return make_bucket(monkeypatch)


def _tiles(run: Path) -> list[tuple]:
    rows = pq.read_table(run / "tiles.parquet").to_pylist()
    return [(r["tile_id"], r["x"], r["y"], r["size"], r["level"]) for r in rows]


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_tile_from_s3_prefix_matches_local_run(bucket: Bucket, cmu_small: Path, tmp_path: Path) -> None:
    bucket.put(cmu_small, f"slides/{cmu_small.name}")
    bucket.put(cmu_small.parent.parent / "README.md", "slides/README.md")  # not a slide: not listed
    remote = tmp_path / "remote"
    summary = tile_stage([bucket.url("slides/")], RunDir(remote), SMALL)
    assert summary["done"] == 1 and summary["failed"] == 0, summary["slides"]
    row = summary["slides"][0]
    assert row["path"] == bucket.url(f"slides/{cmu_small.name}")
    assert row["slide_id"] == cmu_small.stem
    assert row["reader"] == "tiffslide"  # auto picks the reader that reads URLs

    local = tmp_path / "local"
    tile_stage([str(cmu_small)], RunDir(local), SMALL.model_copy(update={"reader": "tiffslide"}))
    assert _tiles(remote) == _tiles(local)
    assert len(_tiles(remote)) > 10
    default_reader = tmp_path / "local-auto"  # OpenSlide locally: the same grid and tissue
    tile_stage([str(cmu_small)], RunDir(default_reader), SMALL)
    assert [t[:4] for t in _tiles(remote)] == [t[:4] for t in _tiles(default_reader)]

    # A later stage reads a patch from the recorded URL: the pixels of the local file.
    tile = pq.read_table(remote / "tiles.parquet").to_pylist()[3]
    record = TileRecord.from_rows(tile, row)
    got = np.asarray(record.read(out_size=128))
    want = read_tile_array(str(cmu_small), tile["x"], tile["y"], tile["size"], 128, reader="tiffslide")
    assert got.shape == (128, 128, 3) and np.array_equal(got, want)

    # The object's ETag is in the fingerprint: a second run is up to date.
    again = tile_stage([bucket.url("slides/")], RunDir(remote), SMALL)
    assert again["up_to_date"] is True
    # No credential reaches the run directory.
    stored = _all_bytes(remote)
    for secret in (FAKE_ENV["AWS_SECRET_ACCESS_KEY"], FAKE_ENV["AWS_ACCESS_KEY_ID"]):
        assert secret.encode() not in stored


def test_s3_manifest_relative_paths_and_missing_objects(
    bucket: Bucket, cmu_small: Path, tmp_path: Path
) -> None:
    bucket.put(cmu_small, "data/slides/a.svs")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,slide_id,project\nslides/a.svs,A,skin\nslides/gone.svs,B,skin\n")
    bucket.put(manifest, "data/manifest.csv")
    summary = tile_stage([bucket.url("data/manifest.csv")], RunDir(tmp_path / "run"), SMALL)
    rows = {r["slide_id"]: r for r in summary["slides"]}
    assert rows["A"]["status"] == "ok" and rows["A"]["path"] == bucket.url("data/slides/a.svs")
    assert rows["A"]["project"] == "skin"
    assert rows["B"]["status"] == "error" and "not found" in rows["B"]["error"]


def test_s3_inputs_fail_early_with_clear_errors(bucket: Bucket, cmu_small: Path, tmp_path: Path) -> None:
    bucket.put(cmu_small, "s/a.svs")
    with pytest.raises(InputError, match="not found"):
        tile_stage([bucket.url("missing/")], RunDir(tmp_path / "r1"), SMALL)
    forced = SMALL.model_copy(update={"reader": "openslide"})
    with pytest.raises(ValueError, match="reader 'openslide' cannot read slides from a URL"):
        tile_stage([bucket.url("s/")], RunDir(tmp_path / "r2"), forced)
    assert not (tmp_path / "r2" / "tiles.parquet").exists()
    with pytest.raises(ValueError, match="credentials"):
        tile_stage([f"s3://user:pw@{bucket.name}/s/"], RunDir(tmp_path / "r3"), SMALL)


def test_config_keeps_slide_urls_as_written(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("slides: [s3://bucket/slides/, local/dir]\n")
    cfg = RunConfig.from_yaml(conf)
    assert cfg.slides[0] == "s3://bucket/slides/"
    assert cfg.slides[1] == str(tmp_path / "local" / "dir")


def test_embed_reads_tiles_from_the_recorded_url(bucket: Bucket, cmu_small: Path, tmp_path: Path) -> None:
    from pathgen.config import EmbedConfig
    from pathgen.embed import embed_stage

    bucket.put(cmu_small, "e/a.svs")
    local_slide = tmp_path / "a.svs"
    local_slide.write_bytes(cmu_small.read_bytes())
    cfg = SMALL.model_copy(update={"size": 672, "reader": "tiffslide"})
    runs = {"remote": bucket.url("e/a.svs"), "local": str(local_slide)}
    embed = EmbedConfig(encoder="tiny", workers=0, batch_size=8, device="cpu")
    for name, slide in runs.items():
        tile_stage([slide], RunDir(tmp_path / name), cfg)
        summary = embed_stage(RunDir(tmp_path / name), embed)
        assert summary["done"] == 1 and summary["failed"] == 0 and summary["n_tiles"] > 3
    remote = (tmp_path / "remote" / "embeddings" / "a.npy").read_bytes()
    assert remote == (tmp_path / "local" / "embeddings" / "a.npy").read_bytes()
