"""The select stage on real slides embedded with the tiny encoder."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pathgen.config import SelectConfig
from pathgen.rundir import RunDir
from pathgen.selection.findings import split_findings
from pathgen.selection.library import bundled_library
from pathgen.selection.stage import select_stage

# the tiny random encoder maps all H&E tiles close together; a strict threshold keeps a useful set
CFG = dict(top_k_attribute=4, top_k_finding=3, per_slide_cap=12, dedup_threshold=0.995)


def test_selected_parquet_follows_the_contract(run_copy, report_text):
    summary = select_stage(run_copy, SelectConfig(**CFG))
    assert summary["failed"] == 0 and summary["done"] == 2 and not summary["up_to_date"]
    table = pq.read_table(run_copy.selected)
    assert table.column_names == [
        "tile_id",
        "slide_id",
        "x",
        "y",
        "size",
        "reason",
        "score",
        "cluster",
        "prompt",
    ]
    rows = table.to_pylist()
    tiles = {r["tile_id"]: r for r in pq.read_table(run_copy.tiles).to_pylist()}
    per_slide: dict[str, list] = {}
    for r in rows:
        per_slide.setdefault(r["slide_id"], []).append(r)
        t = tiles[r["tile_id"]]
        assert (t["slide_id"], t["x"], t["y"], t["size"]) == (r["slide_id"], r["x"], r["y"], r["size"])
        assert r["reason"] in ("attribute", "finding", "cluster")
        assert (r["prompt"] is None) == (r["reason"] == "cluster")
    assert set(per_slide) == {"CMU-1-Small-Region", "tcga-cr-7395-01a-01-ts1"}
    assert all(len(v) <= 12 for v in per_slide.values())
    skcm, hnsc = bundled_library().prompts_for("SKCM"), bundled_library().prompts_for("HNSC")
    findings = split_findings(report_text)
    cmu, tcga = per_slide["CMU-1-Small-Region"], per_slide["tcga-cr-7395-01a-01-ts1"]
    assert {r["prompt"] for r in cmu if r["reason"] == "attribute"} <= set(skcm)
    assert {r["prompt"] for r in cmu if r["reason"] == "finding"} <= set(findings)
    assert {r["prompt"] for r in tcga if r["reason"] == "attribute"} <= set(hnsc)
    assert not any(r["reason"] == "finding" for r in tcga)  # no report, no findings
    assert sum(r["reason"] == "attribute" for r in rows) >= 1
    # rows come sorted by slide, then y, x; tile ids are unique
    keys = [(r["slide_id"], r["y"], r["x"]) for r in rows]
    assert keys == sorted(keys) and len({r["tile_id"] for r in rows}) == len(rows)
    # summary counts agree with the table
    assert summary["selected"] == len(rows)
    assert sum(s["picked"] for s in summary["slides"]) == len(rows) + summary["duplicates_removed"]


def test_second_run_does_nothing_and_changes_redo(run_copy):
    first = select_stage(run_copy, SelectConfig(**CFG))
    mtime = run_copy.selected.stat().st_mtime_ns
    again = select_stage(run_copy, SelectConfig(**CFG))
    assert again["up_to_date"] and again["done"] == 0 and again["selected"] == first["selected"]
    assert run_copy.selected.stat().st_mtime_ns == mtime
    changed = select_stage(run_copy, SelectConfig(**{**CFG, "per_slide_cap": 5}))
    assert not changed["up_to_date"]
    counts = pq.read_table(run_copy.selected).to_pandas().groupby("slide_id").size()
    assert (counts <= 5).all()


def test_deterministic_for_a_seed(run_copy, tmp_path):
    other = RunDir(tmp_path / "other")
    shutil.copytree(run_copy.root, other.root)
    select_stage(run_copy, SelectConfig(**CFG, seed=3))
    select_stage(other, SelectConfig(**CFG, seed=3))
    assert pq.read_table(run_copy.selected).equals(pq.read_table(other.selected))


def test_dedup_threshold_removes_near_duplicates_of_real_tiles(run_copy):
    loose = select_stage(run_copy, SelectConfig(**{**CFG, "dedup_threshold": 1.0}))
    strict = select_stage(run_copy, SelectConfig(**{**CFG, "dedup_threshold": 0.9}))
    assert strict["selected"] < loose["selected"]
    table = pq.read_table(run_copy.selected).to_pylist()
    emb = {}
    for sid in {r["slide_id"] for r in table}:
        tiles = [t["tile_id"] for t in pq.read_table(run_copy.tiles).to_pylist() if t["slide_id"] == sid]
        arr = np.load(run_copy.embeddings / f"{sid}.npy").astype(np.float32)
        emb.update(zip(tiles, arr / np.linalg.norm(arr, axis=1, keepdims=True), strict=True))
    kept = np.stack([emb[r["tile_id"]] for r in table])
    sims = kept @ kept.T
    np.fill_diagonal(sims, 0)
    assert sims.max() < 0.9


def test_user_prompts_and_missing_inputs(run_copy, tmp_path):
    prompts = tmp_path / "p.yaml"
    prompts.write_text("SKCM: [a very specific user prompt about melanoma]\n")
    select_stage(run_copy, SelectConfig(**CFG, prompts=prompts, replace_prompts=True))
    cmu = [r for r in pq.read_table(run_copy.selected).to_pylist() if r["slide_id"] == "CMU-1-Small-Region"]
    assert {r["prompt"] for r in cmu if r["reason"] == "attribute"} == {
        "a very specific user prompt about melanoma"
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("SKCM: []\n")
    with pytest.raises(ValueError, match="invalid prompt file"):
        select_stage(run_copy, SelectConfig(prompts=bad))
    with pytest.raises(FileNotFoundError, match="pathgen embed"):
        select_stage(RunDir(tmp_path / "empty"), SelectConfig())


def test_a_slide_without_embeddings_is_a_failure_row(run_copy):
    (run_copy.embeddings / "tcga-cr-7395-01a-01-ts1.npy").unlink()
    summary = select_stage(run_copy, SelectConfig(**CFG))
    assert summary["failed"] == 1 and summary["done"] == 1
    bad = [s for s in summary["slides"] if s["status"] == "error"]
    assert bad[0]["slide_id"] == "tcga-cr-7395-01a-01-ts1" and "no embeddings" in bad[0]["error"]
    assert set(pq.read_table(run_copy.selected).column("slide_id").to_pylist()) == {"CMU-1-Small-Region"}
    assert run_copy.stage_status("select") is None  # not marked done: a re-run retries


def test_select_reads_either_tile_layout_the_same(run_copy, tmp_path):
    """Select reads the partitioned dataset (no tiles.parquet needed) and older single-file runs alike."""
    from pathgen.tables import layout

    other = RunDir(tmp_path / "file-only")
    shutil.copytree(run_copy.root, other.root)
    run_copy.tiles.unlink()  # stages read RUN/tiles/, never the convenience file
    shutil.rmtree(other.tiles_dir)  # a run tiled before RUN/tiles/ existed
    assert layout(run_copy) == "dataset" and layout(other) == "file"
    a = select_stage(run_copy, SelectConfig(**CFG))
    b = select_stage(other, SelectConfig(**CFG))
    assert a["failed"] == b["failed"] == 0 and a["selected"] == b["selected"] > 0
    assert pq.read_table(run_copy.selected).equals(pq.read_table(other.selected))
    assert [s["slide_id"] for s in a["slides"]] == ["CMU-1-Small-Region", "tcga-cr-7395-01a-01-ts1"]
