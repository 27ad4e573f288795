"""Inputs checked before work: missing paths and symlink loops, slide ids, formats no reader opens."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pathgen.config import TileConfig
from pathgen.rundir import RunDir
from pathgen.slides.manifest import InputError, expand_inputs
from pathgen.slides.stage import tile_stage


def _cli(args: list[str]) -> tuple[int, str]:
    from pathgen.cli import app

    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def _slides(run: Path) -> dict[str, dict]:
    return {r["slide_id"]: r for r in pq.read_table(run / "slides.parquet").to_pylist()}


def _loop(folder: Path, name: str = "loop.svs") -> Path:
    """A symlink that points at itself."""
    link = folder / name
    link.symlink_to(link)
    return link


# -- item 9: inputs that cannot be reached fail before any work -------------------------------------


def test_missing_inputs_fail_before_any_tiling(cmu_small: Path, tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    dangling = tmp_path / "dangling.svs"
    dangling.symlink_to(tmp_path / "gone.svs")
    run = tmp_path / "run"
    missing_dir, missing_file = tmp_path / "no-such-folder", tmp_path / "typo.svs"
    code, out = _cli(
        ["tile", str(cmu_small), str(missing_dir), str(missing_file), str(loop), str(dangling),
         "--out", str(run), "--workers", "1"]
    )  # fmt: skip
    assert code != 0, out
    flat = " ".join(out.split())  # rich wraps long lines
    assert "no-such-folder: file not found" in flat and "typo.svs: file not found" in flat
    assert "loop.svs: symlink loop" in flat and "dangling.svs: broken symlink" in flat
    assert not (run / "slides.parquet").exists() and not (run / "tiles.parquet").exists()


def test_symlink_loop_inside_folder_and_manifest_is_named(cmu_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "slides"
    folder.mkdir()
    (folder / "ok.svs").symlink_to(cmu_small)
    _loop(folder)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,slide_id\n{_loop(tmp_path, 'row-loop.svs')},from-manifest\n")
    summary = tile_stage([str(folder), str(manifest)], RunDir(tmp_path / "run"), TileConfig(workers=1))
    rows = {r["slide_id"]: r for r in summary["slides"]}
    assert rows["ok"]["status"] == "ok"
    assert rows["loop"]["status"] == "error" and rows["loop"]["error"].startswith("symlink loop")
    assert rows["from-manifest"]["error"].startswith("symlink loop")


def test_nothing_tiled_fails_tile_and_run_until_tile(bad_inputs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "bad-slides"
    folder.mkdir()
    for kind in ("empty", "text", "truncated"):
        os.symlink(bad_inputs[kind], folder / bad_inputs[kind].name)
    code, out = _cli(["tile", str(folder), "--out", str(tmp_path / "a"), "--workers", "1"])
    assert code == 1 and "no slide was tiled" in out
    config = tmp_path / "run.yaml"
    config.write_text(f"slides: [{folder}]\nout: {tmp_path / 'b'}\ntile: {{workers: 1}}\n")
    code, out = _cli(["run", str(config), "--until", "tile"])
    assert code != 0, out
    assert "no tiles" in " ".join(out.split())
    assert {r["status"] for r in _slides(tmp_path / "b").values()} == {"error"}


def test_run_checks_slide_paths_before_work(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"slides: [{tmp_path / 'nowhere'}]\nout: {tmp_path / 'run'}\n")
    code, out = _cli(["run", str(config), "--until", "tile"])
    assert code != 0 and "nowhere: file not found" in " ".join(out.split())
    assert not (tmp_path / "run" / "slides.parquet").exists()


# -- item 8: slide ids are unique before work ----------------------------------------------------------


def test_duplicate_manifest_ids_are_an_error_naming_the_rows(cmu_small: Path, tmp_path: Path) -> None:
    copies = []
    for i in range(3):
        link = tmp_path / f"copy{i}.svs"
        link.symlink_to(cmu_small)
        copies.append(link)
    manifest = tmp_path / "slides.csv"
    manifest.write_text(f"path,slide_id\n{copies[0]},A\n{copies[1]},A\n{copies[2]},A-1\n")
    with pytest.raises(InputError, match=r"slide_id 'A': slides.csv row 1, slides.csv row 2"):
        expand_inputs([str(manifest)])
    code, out = _cli(["tile", str(manifest), "--out", str(tmp_path / "run"), "--workers", "1"])
    assert code != 0 and "duplicate slide_id" in out
    assert not (tmp_path / "run" / "slides.parquet").exists()


def test_ids_from_file_names_are_made_unique_with_a_warning(cmu_small: Path, tmp_path: Path) -> None:
    """Files A.svs, A.svs (another folder) and A-1.svs: the old suffixing gave two slides 'A-1'."""
    names = ["d1/A.svs", "d2/A.svs", "d3/A-1.svs", "d4/B.svs"]
    for name in names:
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).symlink_to(cmu_small)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,slide_id\n{tmp_path / 'd4/B.svs'},B\n")  # an explicit id wins
    inputs = [str(tmp_path / "d1"), str(tmp_path / "d2"), str(tmp_path / "d3"), str(manifest)]
    records = expand_inputs(inputs)
    assert [r["slide_id"] for r in records] == ["A", "A-2", "A-1", "B"]
    assert "renamed 'A-2'" in records[1]["input_warning"] and records[2]["input_warning"] is None
    run = tmp_path / "run"
    summary = tile_stage(inputs, RunDir(run), TileConfig(workers=1))
    assert summary["done"] == 4
    rows = _slides(run)
    assert "renamed 'A-2'" in rows["A-2"]["warning"] and rows["A"]["warning"] is None
    tiles = pq.read_table(run / "tiles.parquet").to_pandas()
    assert tiles.tile_id.is_unique
    assert tiles.groupby("slide_id").size().to_dict() == {
        s: rows[s]["n_tiles"] for s in ("A", "A-1", "A-2", "B")
    }


# -- item 7: formats no reader opens are listed, not passed over -----------------------------------------


def test_folder_lists_unsupported_formats_and_lone_mirax(cmu_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.svs").symlink_to(cmu_small)
    (folder / "zeiss.czi").write_bytes(b"ZISRAWFILE" + bytes(100))
    (folder / "olympus.vsi").write_bytes(b"II*\x00" + bytes(100))
    (folder / "philips.isyntax").write_bytes(b"<?xml" + bytes(100))
    (folder / "lonely.mrxs").write_text("[GENERAL]\nSLIDE_VERSION = 01.02\n")
    (folder / "notes.txt").write_text("not a slide")
    (folder / "table.csv").write_text("a,b\n")
    summary = tile_stage([str(folder)], RunDir(tmp_path / "run"), TileConfig(workers=1))
    rows = {r["slide_id"]: r for r in summary["slides"]}
    assert set(rows) == {"good", "zeiss", "olympus", "philips", "lonely"}  # no .txt/.csv rows
    assert rows["good"]["status"] == "ok"
    for sid, fmt in (("zeiss", "Zeiss CZI (.czi)"), ("olympus", "VSI (.vsi)"), ("philips", "iSyntax")):
        assert rows[sid]["status"] == "skipped" and "unsupported format: " in rows[sid]["error"], rows[sid]
        assert fmt in rows[sid]["error"]
    lonely = rows["lonely"]
    assert lonely["status"] == "error" and "MIRAX slide without its data folder" in lonely["error"]
    assert "lonely/" in lonely["error"]
    assert summary["skipped_slides"] == 3 and summary["failed"] == 1 and summary["done"] == 1


def test_folder_of_only_unsupported_files_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "czi-only"
    folder.mkdir()
    (folder / "a.czi").write_bytes(b"ZISRAWFILE" + bytes(100))
    code, out = _cli(["tile", str(folder), "--out", str(tmp_path / "run"), "--workers", "1"])
    assert code == 1 and "no slide was tiled" in out
    rows = _slides(tmp_path / "run")
    assert list(rows) == ["a"] and rows["a"]["status"] == "skipped" and "Zeiss CZI" in rows["a"]["error"]
