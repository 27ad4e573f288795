"""Run tables as partitioned datasets: the tile stage writes RUN/tiles/, readers hide the layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pathgen import tables
from pathgen.config import TileConfig
from pathgen.rundir import RunDir
from pathgen.slides.stage import TileResults, tile_stage, write_tile_tables


def _synthetic(run: RunDir, n_slides: int = 5, seed: int = 0, skip: tuple[int, ...] = ()) -> list[dict]:
    """Tile tables of ``n_slides`` made-up slides (random grids), through the stage's own writer."""
    rng = np.random.default_rng(seed)
    records = [{"slide_id": f"s{i:02d}", "path": f"/x/s{i:02d}.svs"} for i in range(n_slides)][::-1]
    results = TileResults(run, records)
    for i in range(len(records)):
        if i in skip:
            results[i] = {"row": {"status": "no_tissue", "n_tiles": 0}, "x": [], "y": [], "frac": []}
            continue
        n = int(rng.integers(3, 40))
        cells = rng.choice(400, size=n, replace=False)
        results[i] = {
            "row": {"status": "ok", "n_tiles": n, "tile_size": 512, "tile_level": 0},
            "x": (cells % 20 * 512).tolist(),
            "y": (cells // 20 * 512).tolist(),
            "frac": rng.uniform(0.5, 1, n).tolist(),
        }
    run.ensure()
    write_tile_tables(run, records, results)
    return records


def test_tile_stage_writes_a_dataset_and_the_same_single_file(cmu_small: Path, tcga_jp2k: Path, tmp_path):
    run = RunDir(tmp_path / "run")
    summary = tile_stage([str(cmu_small), str(tcga_jp2k)], run, TileConfig(size=448, workers=1))
    whole = pq.read_table(run.tiles)
    assert whole.num_rows == summary["n_tiles"] > 0
    manifest = json.loads((run.tiles_dir / "_manifest.json").read_text())
    assert [p["slide_id"] for p in manifest["partitions"]] == [
        "CMU-1-Small-Region",
        "tcga-cr-7395-01a-01-ts1",
    ]
    assert manifest["rows"] == whole.num_rows
    assert sorted(p.name for p in run.tiles_dir.glob("*.parquet")) == sorted(
        p["file"] for p in manifest["partitions"]
    )
    # one reader, same rows and order as tiles.parquet; pyarrow reads the folder directly too
    assert tables.layout(run) == "dataset"
    assert tables.read_tiles(run).equals(whole)
    assert pq.read_table(run.tiles_dir).sort_by([("slide_id", "ascending")]).num_rows == whole.num_rows
    by_slide = dict(tables.iter_tiles_by_slide(run, columns=["tile_id", "x"]))
    assert list(by_slide) == ["CMU-1-Small-Region", "tcga-cr-7395-01a-01-ts1"]
    for sid, part in by_slide.items():
        expect = whole.filter(ds.field("slide_id") == sid)
        assert part.column_names == ["tile_id", "x"]
        assert part.column("tile_id").to_pylist() == expect.column("tile_id").to_pylist()
        assert tables.read_tiles(run, sid).equals(expect)
    assert tables.tile_counts(run) == {sid: t.num_rows for sid, t in by_slide.items()}


def test_results_keep_only_the_row_and_partitions_are_written_as_slides_finish(tmp_path):
    run = RunDir(tmp_path)
    records = [{"slide_id": "a", "path": "/a"}, {"slide_id": "b", "path": "/b"}]
    results = TileResults(run, records)
    ok = {"row": {"status": "ok", "n_tiles": 2, "tile_size": 64, "tile_level": 0}, "x": [64, 0], "y": [0, 0],
          "frac": [0.9, 0.7]}  # fmt: skip
    results[1] = ok
    assert set(results[1]) == {"row", "part"}  # the coordinates are on disk, not in memory
    part = run.tiles_dir / results[1]["part"]["file"]
    assert pq.read_table(part).column("tile_id").to_pylist() == ["b:0:0:64", "b:64:0:64"]
    assert tables.layout(run) is None  # nothing is published before the manifest


def test_manifest_is_the_truth_identity_follows_content(tmp_path):
    run = RunDir(tmp_path / "run")
    _synthetic(run, seed=0)
    first = tables.tiles_identity(run)
    rows = tables.read_tiles(run)
    _synthetic(run, seed=0)  # same tables again: same identity, nothing new on disk
    assert tables.tiles_identity(run) == first
    stray = run.tiles_dir / "left-by-a-killed-run.parquet"
    shutil.copy(next(run.tiles_dir.glob("s00-*.parquet")), stray)
    assert tables.read_tiles(run).equals(rows)  # readers go by the manifest, not by the folder
    _synthetic(run, seed=1, skip=(2,))
    assert tables.tiles_identity(run) != first
    assert not stray.exists()  # publishing a manifest removes partitions it does not list
    manifest = tables.read_manifest(run)
    assert len(manifest["partitions"]) == 4 and len(list(run.tiles_dir.glob("*.parquet"))) == 4
    assert tables.read_tiles(run).equals(pq.read_table(run.tiles))
    assert tables.read_tiles(run, "s02").num_rows == 0  # a slide without tiles: an empty table


def test_a_run_with_only_tiles_parquet_reads_the_same(tmp_path):
    run = RunDir(tmp_path / "run")
    _synthetic(run, n_slides=6)
    dataset = {sid: t for sid, t in tables.iter_tiles_by_slide(run)}
    identity = tables.tiles_identity(run)
    shutil.rmtree(run.tiles_dir)  # a run made before the dataset existed
    assert tables.layout(run) == "file"
    assert tables.tiles_identity(run) != identity
    single = dict(tables.iter_tiles_by_slide(run))
    assert list(single) == list(dataset)
    assert all(single[s].equals(dataset[s]) for s in dataset)
    assert tables.read_tiles(run, "s03").equals(dataset["s03"])
    assert dict(tables.iter_tiles_by_slide(run, slide_ids=["s01", "s04"])).keys() == {"s01", "s04"}
    assert tables.count_tiles(run) == sum(t.num_rows for t in dataset.values())
    lazy = tables.SlideTiles(run)
    assert list(lazy) == list(dataset)
    assert np.array_equal(lazy["s05"]["x"], dataset["s05"].column("x").to_numpy())


def test_slide_tiles_reads_one_partition_per_lookup(tmp_path):
    run = RunDir(tmp_path / "run")
    _synthetic(run, n_slides=4)
    lazy = tables.SlideTiles(run)
    part = run.tiles_dir / tables.read_manifest(run)["partitions"][1]["file"]
    part.unlink()  # only s01's partition is gone: the others still read, s01 fails when asked
    assert len(lazy["s02"]["x"]) == tables.read_manifest(run)["partitions"][2]["rows"]
    with pytest.raises(FileNotFoundError):
        lazy["s01"]
    assert "nope" not in lazy and lazy.get("nope") is None


def test_missing_table_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="pathgen tile"):
        tables.read_tiles(RunDir(tmp_path))


def test_partition_names_are_safe_for_any_slide_id():
    name = tables.partition_name("../TCGA 01/α:x", "0123456789abcdef")
    assert "/" not in name and not name.startswith(".") and name.endswith("-0123456789abcdef.parquet")
