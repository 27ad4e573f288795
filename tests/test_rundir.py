"""The run directory: atomic writes never leave partial files, stage markers gate re-runs."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pathgen.rundir import RunDir, atomic_path, atomic_write, fingerprint, write_parquet


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a" / "b.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]


def test_atomic_path_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "t.parquet"
    write_parquet([{"x": 1}], target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert pq.read_table(target).to_pylist() == [{"x": 1}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_stage_markers_gate_on_fingerprint(tmp_path):
    run = RunDir(tmp_path / "run")
    assert not run.root.exists(), "constructing a RunDir must not touch the disk"
    fp = fingerprint({"size": 672}, ["slide.svs"])
    assert not run.stage_done("tile", fp)
    run.mark_stage("tile", fp, {"done": 2})
    assert run.stage_done("tile", fp)
    assert not run.stage_done("tile", fingerprint({"size": 224}, ["slide.svs"]))
    assert run.stage_status("tile")["summary"] == {"done": 2}
    run.clear_stage("tile")
    assert run.stage_status("tile") is None


def test_require_names_the_stage_to_run(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(FileNotFoundError, match="pathgen tile"):
        run.require(run.tiles, "tile")


def test_fingerprint_is_order_insensitive_for_mappings_only():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint([1, 2]) != fingerprint([2, 1])
