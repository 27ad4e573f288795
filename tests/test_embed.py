"""The embed stage on real slides with the tiny encoder: alignment, resume, encoder change, failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pathgen.config import EmbedConfig, TileConfig
from pathgen.embed import embed_stage, read_meta
from pathgen.rundir import RunDir

CFG = EmbedConfig(encoder="tiny", workers=0, batch_size=8, device="cpu")


@pytest.fixture(scope="module")
def tiled(tmp_path_factory, cmu_small: Path) -> RunDir:
    """Two slides (CMU-1-Small-Region and a copy named `copy`), tiled at 448 px."""
    from pathgen.slides.stage import tile_stage

    root = tmp_path_factory.mktemp("embed")
    copy = root / "copy.svs"
    shutil.copy(cmu_small, copy)
    run = RunDir(root / "run")
    summary = tile_stage([str(cmu_small), str(copy)], run, TileConfig(size=448, workers=1))
    assert summary["failed"] == 0
    return run


@pytest.fixture
def run(tiled: RunDir, tmp_path: Path) -> RunDir:
    dst = RunDir(tmp_path / "run")
    dst.ensure()
    for name in ("slides.parquet", "tiles.parquet"):
        shutil.copy(tiled.root / name, dst.root / name)
    return dst


def _tiles(run: RunDir, sid: str) -> list[dict]:
    return [t for t in pq.read_table(run.tiles).to_pylist() if t["slide_id"] == sid]


def test_arrays_are_row_aligned_with_tiles(run, cmu_small):
    from pathgen.models import load_encoder
    from pathgen.slides import read_tile

    summary = embed_stage(run, CFG)
    assert summary["done"] == 2 and summary["failed"] == 0 and summary["n_tiles"] > 10
    meta = read_meta(run)
    assert meta["encoder"] == "tiny" and meta["dim"] == 64 and meta["image_size"] == 224
    for sid in ("CMU-1-Small-Region", "copy"):
        arr = np.load(run.embeddings / f"{sid}.npy")
        assert arr.dtype == np.float16 and arr.shape == (len(_tiles(run, sid)), 64)
        assert meta["slides"][sid]["n_tiles"] == len(arr)
    tiles = _tiles(run, "CMU-1-Small-Region")
    enc = load_encoder("tiny", device="cpu")
    pick = [0, len(tiles) // 2, len(tiles) - 1]
    direct = enc.encode_images(
        [read_tile(cmu_small, t["x"], t["y"], t["size"], 224) for t in (tiles[i] for i in pick)]
    )
    stored = np.load(run.embeddings / "CMU-1-Small-Region.npy")[pick].astype(np.float32)
    np.testing.assert_allclose(stored, direct, atol=2e-3)
    # the copy is the same image, so the same embeddings
    np.testing.assert_array_equal(
        np.load(run.embeddings / "copy.npy"), np.load(run.embeddings / "CMU-1-Small-Region.npy")
    )


def test_second_run_does_nothing_and_resumes_per_slide(run):
    embed_stage(run, CFG)
    mtime = (run.embeddings / "copy.npy").stat().st_mtime_ns
    again = embed_stage(run, CFG)
    assert again["up_to_date"] and again["done"] == 0 and again["skipped"] == 2
    (run.embeddings / "CMU-1-Small-Region.npy").unlink()
    resumed = embed_stage(run, CFG)
    assert resumed["done"] == 1 and resumed["skipped"] == 1
    assert (run.embeddings / "copy.npy").stat().st_mtime_ns == mtime
    assert (run.embeddings / "CMU-1-Small-Region.npy").exists()


def test_another_encoder_redoes_everything_and_workers_agree(run):
    embed_stage(run, CFG)
    before = np.load(run.embeddings / "copy.npy")
    other = EmbedConfig(encoder="open_clip:pathgen-tiny?quick_gelu=1", workers=2, batch_size=4, device="cpu")
    summary = embed_stage(run, other)
    assert summary["done"] == 2 and summary["skipped"] == 0
    assert read_meta(run)["encoder"] == "open_clip:pathgen-tiny?quick_gelu=1"
    assert not np.allclose(np.load(run.embeddings / "copy.npy"), before)
    back = embed_stage(run, EmbedConfig(encoder="tiny", workers=2, batch_size=3, device="cpu"))
    assert back["done"] == 2  # meta had the other encoder: redone, and with 2 workers ...
    np.testing.assert_allclose(np.load(run.embeddings / "copy.npy"), before, atol=1e-3)  # ... same numbers


def test_an_unreadable_slide_fails_alone_and_is_retried(run, tmp_path):
    import pyarrow as pa

    slides = pq.read_table(run.slides).to_pylist()
    hidden = tmp_path / "moved.svs"
    for row in slides:
        if row["slide_id"] == "copy":
            shutil.copy(row["path"], hidden)
            row["path"] = str(tmp_path / "gone.svs")
    pq.write_table(pa.Table.from_pylist(slides), run.slides)
    summary = embed_stage(run, CFG)
    assert summary["done"] == 1 and summary["failed"] == 1
    errors = json.loads((run.embeddings / "errors.json").read_text())
    assert errors["copy"]["status"] == "error" and "no tile could be read" in errors["copy"]["error"]
    assert not (run.embeddings / "copy.npy").exists() and "copy" not in read_meta(run)["slides"]
    assert run.stage_status("embed") is None
    for row in slides:
        if row["slide_id"] == "copy":
            row["path"] = str(hidden)
    pq.write_table(pa.Table.from_pylist(slides), run.slides)
    retry = embed_stage(run, CFG)
    assert retry["done"] == 1 and retry["skipped"] == 1 and retry["failed"] == 0
    assert "copy" not in json.loads((run.embeddings / "errors.json").read_text())


def test_missing_tiles_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pathgen tile"):
        embed_stage(RunDir(tmp_path), CFG)


def test_an_unreadable_tile_is_a_zero_row_and_selection_skips_it(run):
    import pyarrow as pa

    from pathgen.config import SelectConfig
    from pathgen.selection.stage import select_stage

    tiles = pq.read_table(run.tiles).to_pylist()
    bad = next(i for i, t in enumerate(tiles) if t["slide_id"] == "copy")
    tiles[bad]["size"] = -5  # read_tile refuses it
    pq.write_table(pa.Table.from_pylist(tiles, schema=pq.read_schema(run.tiles)), run.tiles)
    summary = embed_stage(run, CFG)
    assert summary["done"] == 2 and summary["failed"] == 0 and summary["bad_tiles"] == 1
    errors = json.loads((run.embeddings / "errors.json").read_text())
    assert errors["copy"]["status"] == "partial" and errors["copy"]["rows"] == [0]
    arr = np.load(run.embeddings / "copy.npy")
    assert not arr[0].any() and np.abs(np.linalg.norm(arr[1:].astype(np.float32), axis=1) - 1).max() < 1e-2
    select_stage(run, SelectConfig(dedup_threshold=1.0))  # keep all but float16-exact twins
    chosen = set(pq.read_table(run.selected).column("tile_id").to_pylist())
    assert tiles[bad]["tile_id"] not in chosen
    # every position is still represented (the copy's bad tile has a twin in CMU-1-Small-Region)
    assert {t.split(":", 1)[1] for t in chosen} == {t["tile_id"].split(":", 1)[1] for t in tiles}


def test_windows_of_one_slide_write_the_bytes_of_one_window(run, tmp_path, monkeypatch):
    """Slides stream through in windows (only a window's grids in memory): the bytes do not change."""
    import pathgen.embed as embed_module

    whole = embed_stage(run, CFG)
    arrays = {sid: (run.embeddings / f"{sid}.npy").read_bytes() for sid in ("CMU-1-Small-Region", "copy")}
    other = RunDir(tmp_path / "windows")
    shutil.copytree(run.root, other.root, ignore=shutil.ignore_patterns("embeddings", ".pathgen"))
    monkeypatch.setattr(embed_module, "WINDOW_TILES", 1)
    windows = embed_module._windows(
        [{"slide_id": s} for s in arrays], {s: whole["n_tiles"] // 2 for s in arrays}
    )
    assert [len(w) for w in windows] == [1, 1]
    split = embed_stage(other, CFG)
    assert split["done"] == 2 and split["n_tiles"] == whole["n_tiles"] and split["failed"] == 0
    for sid, data in arrays.items():
        assert (other.embeddings / f"{sid}.npy").read_bytes() == data
    assert read_meta(other)["slides"] == read_meta(run)["slides"]


def test_the_ray_chunk_table_holds_each_chunks_coordinates(run):
    """The rows Ray Data reads are built from the grids' arrays (no per-tile Python objects)."""
    from pathgen.embedding.plan import EmbedJob, SlideTiles
    from pathgen.embedding.ray_data import chunk_table

    a = SlideTiles("a", "s3://b/a.svs", "tiffslide", np.arange(5), np.arange(5) * 2, np.full(5, 448))
    b = SlideTiles("b", "/b.svs", "auto", np.arange(3) + 100, np.arange(3), np.full(3, 224))
    job = EmbedJob.build([a, b], batch_size=2)
    table = chunk_table(job).to_pylist()
    assert [r["chunk"] for r in table] == list(range(len(job.chunks))) and len(table) == 5
    for row, chunk in zip(table, job.chunks, strict=True):
        tiles = job.slides[chunk.slide]
        assert row["path"] == tiles.path and row["reader"] == tiles.reader
        assert row["x"] == tiles.x[chunk.start : chunk.stop].tolist()
        assert row["y"] == tiles.y[chunk.start : chunk.stop].tolist()
        assert row["size"] == tiles.size[chunk.start : chunk.stop].tolist()
