"""The tile stage end to end: real slides, a built big slide, bad inputs, re-runs, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pathgen.config import RunConfig, TileConfig
from pathgen.rundir import RunDir
from pathgen.slides import open_slide, read_tile_array
from pathgen.slides.stage import tile_stage

TILE_COLUMNS = ["tile_id", "slide_id", "x", "y", "size", "level", "tissue_fraction"]


def _tile(args: list[str]) -> tuple[int, str]:
    from pathgen.cli import app

    result = CliRunner().invoke(app, ["tile", *args])
    return result.exit_code, result.output


def _slides(run: Path) -> dict[str, dict]:
    return {r["slide_id"]: r for r in pq.read_table(run / "slides.parquet").to_pylist()}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, slides_dir: Path) -> tuple[Path, int, str]:
    run = tmp_path_factory.mktemp("run-a")
    code, out = _tile(
        [str(slides_dir), "--out", str(run), "--workers", "2", "--preview", str(run / "preview")]
    )
    return run, code, out


def test_real_slides_dir(real_run: tuple[Path, int, str]) -> None:
    run, code, out = real_run
    assert code == 0, out
    slides = _slides(run)
    cmu, tcga, dcm = (
        slides["CMU-1-Small-Region"],
        slides["tcga-cr-7395-01a-01-ts1"],
        slides["TCGA-XK-AAJU-small"],
    )
    assert cmu["status"] == "ok" and cmu["mpp"] == pytest.approx(0.499) and cmu["mpp_source"] == "metadata"
    assert cmu["warning"] is None and cmu["n_tiles"] > 0 and cmu["vendor"] == "aperio"
    assert tcga["status"] == "ok" and tcga["mpp"] is None and tcga["mpp_source"] == "none"
    assert "no mpp" in tcga["warning"]
    assert dcm["status"] == "error" and "wsidicom" in dcm["error"] and "ImageType" in dcm["error"]
    tiles = pq.read_table(run / "tiles.parquet")
    assert tiles.column_names == TILE_COLUMNS
    assert tiles.num_rows == cmu["n_tiles"] + tcga["n_tiles"]
    rows = tiles.to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["slide_id"], r["y"], r["x"]))
    for r in rows:
        s = slides[r["slide_id"]]
        assert r["tile_id"] == f"{r['slide_id']}:{r['x']}:{r['y']}:{r['size']}"
        assert (
            r["x"] >= 0
            and r["x"] + r["size"] <= s["width"]
            and r["y"] >= 0
            and r["y"] + r["size"] <= s["height"]
        )
        assert r["tissue_fraction"] >= 0.5 and r["size"] == 672 and r["level"] == 0
    assert (run / "preview" / "CMU-1-Small-Region.png").stat().st_size > 1000
    assert (run / "preview" / "tcga-cr-7395-01a-01-ts1.png").exists()
    assert RunConfig.from_yaml(run / "config.yaml").tile == TileConfig(workers=2)


def test_rerun_is_a_noop_and_says_so(real_run: tuple[Path, int, str], slides_dir: Path) -> None:
    run, _, _ = real_run
    before = {p: p.stat().st_mtime_ns for p in (run / "tiles.parquet", run / "slides.parquet")}
    code, out = _tile(
        [str(slides_dir), "--out", str(run), "--workers", "2", "--preview", str(run / "preview")]
    )
    assert code == 0
    assert "up to date" in out
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_ids_are_stable_across_runs(
    real_run: tuple[Path, int, str], slides_dir: Path, tmp_path: Path
) -> None:
    run, _, _ = real_run
    summary = tile_stage([str(slides_dir)], RunDir(tmp_path), TileConfig(workers=1))
    assert summary["done"] == 2 and summary["failed"] == 1 and not summary["up_to_date"]
    first = pq.read_table(run / "tiles.parquet").column("tile_id").to_pylist()
    assert pq.read_table(tmp_path / "tiles.parquet").column("tile_id").to_pylist() == first


def test_physical_tile_size(cmu_small: Path, tcga_jp2k: Path, tmp_path: Path) -> None:
    code, out = _tile(
        [
            str(cmu_small),
            str(tcga_jp2k),
            "--mpp",
            "0.5",
            "--size",
            "224",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert code == 0, out
    slides = _slides(tmp_path / "b")
    assert slides["CMU-1-Small-Region"]["tile_size"] == round(224 * 0.5 / 0.499)
    warn = slides["tcga-cr-7395-01a-01-ts1"]["warning"]
    assert "no --assume-mpp" in warn and "level 0 with 224 px" in warn
    sizes = pq.read_table(tmp_path / "b" / "tiles.parquet").to_pandas().groupby("slide_id")["size"].unique()
    assert sizes.to_dict() == {"CMU-1-Small-Region": [224], "tcga-cr-7395-01a-01-ts1": [224]}

    summary = tile_stage(
        [str(cmu_small), str(tcga_jp2k)],
        RunDir(tmp_path / "c"),
        TileConfig(mpp=1.0, size=224, assume_mpp=0.25, workers=1),
    )
    rows = {r["slide_id"]: r for r in summary["slides"]}
    assert rows["CMU-1-Small-Region"]["tile_size"] == round(224 * 1.0 / 0.499)
    tcga = rows["tcga-cr-7395-01a-01-ts1"]
    assert tcga["tile_size"] == 896 and tcga["mpp_source"] == "assumed" and "assumed 0.25" in tcga["warning"]
    assert tcga["tile_level"] == 1  # 896 px read at 224 px: the 2x level serves it


def test_every_bad_input_gets_a_row(bad_inputs: dict[str, Path], cmu_small: Path, tmp_path: Path) -> None:
    paths = [str(p) for kind, p in bad_inputs.items() if kind != "missing"]  # missing: fails at once
    code, out = _tile([*paths, str(cmu_small), "--out", str(tmp_path), "--workers", "1"])
    assert code == 0, out
    slides = _slides(tmp_path)
    by_path = {r["path"]: r for r in slides.values()}
    expect = {
        "empty": "empty file (0 bytes)",
        "png": "file is a PNG image",
        "text": "file is a text file",
        "empty_dir": "directory contains no slides",
    }
    for kind, message in expect.items():
        row = by_path[str(bad_inputs[kind])]
        assert row["status"] == "error" and message in row["error"], (kind, row)
    truncated = by_path[str(bad_inputs["truncated"])]
    assert truncated["status"] == "error" and "truncated" in truncated["error"]
    blank = by_path[str(bad_inputs["no_tissue"])]
    assert blank["status"] == "no_tissue" and "no tile reaches" in blank["error"]
    assert slides["CMU-1-Small-Region"]["status"] == "ok"
    tiles = pq.read_table(tmp_path / "tiles.parquet")
    assert set(tiles.column("slide_id").to_pylist()) == {"CMU-1-Small-Region"}
    assert not list(tmp_path.glob(".*.tmp*"))  # nothing half-written


def test_nothing_tiled_exits_1_with_a_table(bad_inputs: dict[str, Path], tmp_path: Path) -> None:
    code, out = _tile(
        [str(bad_inputs["empty"]), str(bad_inputs["text"]), "--workers", "1", "--out", str(tmp_path)]
    )
    assert code == 1
    assert "empty.svs" in out or "empty" in out
    assert "no slide was tiled" in out
    assert _slides(tmp_path)["empty"]["status"] == "error"


def test_manifest_columns_travel(cmu_small: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "slides.csv"
    manifest.write_text(
        "path,slide_id,project,report,file_id,site\n"
        f"{cmu_small},cmu-1,TCGA-SKCM,a report text,abc-123,skin\n"
        "nowhere.svs,,TCGA-BRCA,,,breast\n"
    )
    summary = tile_stage([str(manifest)], RunDir(tmp_path / "run"), TileConfig(workers=1))
    assert summary["done"] == 1 and summary["failed"] == 1
    slides = _slides(tmp_path / "run")
    assert slides["cmu-1"]["project"] == "TCGA-SKCM" and slides["cmu-1"]["file_id"] == "abc-123"
    assert slides["cmu-1"]["site"] == "skin" and slides["cmu-1"]["report"] == "a report text"
    assert slides["nowhere"]["status"] == "error" and slides["nowhere"]["error"] == "file not found"
    ids = pq.read_table(tmp_path / "run" / "tiles.parquet").column("tile_id").to_pylist()
    assert ids and all(i.startswith("cmu-1:") for i in ids)


def test_built_slide_tiles_are_tissue(built_slide: Path, tmp_path: Path) -> None:
    summary = tile_stage([str(built_slide)], RunDir(tmp_path), TileConfig(workers=1), preview=tmp_path / "pv")
    row = summary["slides"][0]
    assert row["status"] == "ok" and row["mpp"] == pytest.approx(0.5) and row["levels"] >= 3
    tiles = pq.read_table(tmp_path / "tiles.parquet").to_pandas()
    candidates = (8192 // 672) * (6144 // 672)
    assert 0.2 * candidates < len(tiles) < 0.9 * candidates  # the glass margin and gaps are rejected
    slide = open_slide(built_slide)
    kept = {(int(x), int(y)) for x, y in zip(tiles.x, tiles.y, strict=True)}
    import cv2

    def saturation(x: int, y: int) -> float:
        rgb = read_tile_array(slide, x, y, 672, 168)
        return float(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1].mean())

    assert np.mean([saturation(x, y) for x, y in sorted(kept)[:10]]) > 40
    assert saturation(0, 0) < 10 and (0, 0) not in kept  # the corner is glass
    assert (tmp_path / "pv" / f"{row['slide_id']}.png").exists()
    again = tile_stage([str(built_slide)], RunDir(tmp_path), TileConfig(workers=1), preview=tmp_path / "pv")
    assert again["up_to_date"] is True


def test_changed_config_reuses_nothing_stale(cmu_small: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    a = tile_stage([str(cmu_small)], run, TileConfig(workers=1))
    b = tile_stage([str(cmu_small)], run, TileConfig(workers=1, min_tissue=0.9))
    assert not b["up_to_date"] and b["skipped"] == 0
    assert b["n_tiles"] <= a["n_tiles"]
    c = tile_stage([str(cmu_small)], run, TileConfig(workers=1))  # back to the first config: cached slide
    assert c["skipped"] == 1 and c["n_tiles"] == a["n_tiles"]


def test_slide_paths_are_stored_absolute_with_stable_ids(cmu_small, tmp_path, monkeypatch):
    """Later stages re-open the slides from slides.parquet, maybe from another directory."""
    from pathgen.slides.manifest import expand_inputs

    link = tmp_path / "data" / "my-slide.svs"
    link.parent.mkdir()
    link.symlink_to(cmu_small)
    monkeypatch.chdir(tmp_path)
    (rec,) = expand_inputs(["data/my-slide.svs"])
    assert rec["path"] == str(tmp_path / "data" / "my-slide.svs") and rec["slide_id"] == "my-slide"
    assert rec["input_error"] is None
