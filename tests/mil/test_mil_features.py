"""`pathgen features` on a real slide with the tiny encoder: layout, alignment, resume, reuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.config import EmbedConfig, TileConfig
from pathgen.mil.extract import features_stage
from pathgen.mil.h5 import read_slide
from pathgen.rundir import RunDir

CFG = EmbedConfig(encoder="tiny", workers=0, batch_size=8, device="cpu")


@pytest.fixture(scope="module")
def tiled(tmp_path_factory, cmu_small: Path) -> RunDir:
    from pathgen.slides.stage import tile_stage

    root = tmp_path_factory.mktemp("features")
    run = RunDir(root / "run")
    assert tile_stage([str(cmu_small)], run, TileConfig(size=448, workers=1))["failed"] == 0
    return run


@pytest.fixture
def run(tiled: RunDir, tmp_path: Path) -> RunDir:
    dst = RunDir(tmp_path / "run")
    shutil.copytree(tiled.root, dst.root)
    return dst


def test_features_match_tiles_and_encoder(run, cmu_small):
    from pathgen.models import load_encoder
    from pathgen.slides import read_tile

    summary = features_stage(run, CFG)
    assert summary["done"] == 1 and summary["failed"] == 0
    out = Path(summary["out"])
    assert out == run.root / "features" / "tiny"
    tiles = [t for t in pq.read_table(run.tiles).to_pylist()]
    path = out / "h5_files" / "CMU-1-Small-Region.h5"
    with h5py.File(path) as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (len(tiles), 64)
        assert f["coords"].dtype == np.int64
        assert f["coords"].attrs["patch_size"] == 448 and f["coords"].attrs["patch_level"] == 0
        assert f.attrs["encoder"] == "tiny" and f.attrs["slide_path"] == str(cmu_small)
    slide = read_slide(path)
    assert slide.coords.tolist() == [[t["x"], t["y"]] for t in tiles]  # level-0, in the tile table's order
    enc = load_encoder("tiny", device="cpu")
    t = tiles[3]
    direct = enc.encode_images([read_tile(str(cmu_small), t["x"], t["y"], t["size"], enc.image_size)])[0]
    assert np.allclose(slide.features[3], direct, atol=2e-3)  # float16 precision, as the embed stage


def test_resume_skips_finished_slides_and_redoes_a_new_encoder(run):
    first = features_stage(run, CFG)
    path = Path(first["out"]) / "h5_files" / "CMU-1-Small-Region.h5"
    stamp = path.stat().st_mtime_ns
    again = features_stage(run, CFG)
    assert again["up_to_date"] and again["skipped"] == 1 and path.stat().st_mtime_ns == stamp
    other = features_stage(run, CFG, out=Path(first["out"]))  # same folder, same encoder: still skipped
    assert other["skipped"] == 1
    changed = features_stage(
        run, CFG.model_copy(update={"encoder": "open_clip:pathgen-tiny"}), out=Path(first["out"])
    )
    assert changed["done"] == 1  # another encoder's features never count as done


def test_reuses_embed_arrays_of_the_same_encoder(run):
    from pathgen.embed import embed_stage

    embed_stage(run, CFG)
    summary = features_stage(run, CFG)
    assert summary["reused"] == 1 and summary["done"] == 0
    slide = read_slide(Path(summary["out"]) / "h5_files" / "CMU-1-Small-Region.h5")
    arr = np.load(run.embeddings / "CMU-1-Small-Region.npy")
    assert np.array_equal(slide.features, arr.astype(np.float32)) and slide.attrs["source"] == "embeddings"


def test_cli(run, tmp_path):
    out = tmp_path / "feats"
    res = CliRunner().invoke(
        app,
        [
            "features",
            str(run.root),
            "--encoder",
            "tiny",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "h5_files" / "CMU-1-Small-Region.h5").exists()
    res = CliRunner().invoke(
        app, ["features", str(run.root), "--encoder", "tiny", "--out", str(out), "--device", "cpu"]
    )
    assert res.exit_code == 0 and "up to date" in res.output
