"""The run directory: atomic writes never leave partial files, stage markers gate re-runs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pathgen import rundir as rundir_module
from pathgen.rundir import (
    RunDir,
    atomic_path,
    atomic_write,
    current_umask,
    fingerprint,
    replacing_dir,
    write_parquet,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_atomic_writes_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        atomic_write(tmp_path / "a.txt", "x")
        write_parquet([{"x": 1}], tmp_path / "b.parquet")
        with replacing_dir(tmp_path / "d") as new:
            (new / "f").write_text("y")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.parquet"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name
    assert _mode(tmp_path / "d") == 0o777 & ~mask


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replacing_dir_swaps_whole_folders(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(rundir_module, "_exchange", lambda a, b: False)
    final = tmp_path / "data"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replacing_dir(final) as new:
        (new / "half.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert [p.name for p in final.iterdir()] == ["old.txt"]
    with replacing_dir(final) as new:
        (new / "new.txt").write_text("new")
        assert [p.name for p in final.iterdir()] == ["old.txt"], "nothing changes before the swap"
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_replacing_dir_cleans_up_after_a_killed_run(tmp_path):
    final = tmp_path / "data"
    final.mkdir()
    (final / "kept.txt").write_text("kept")
    dead = _dead_pid()
    (tmp_path / f".data.tmp-{dead}-abc").mkdir()  # a half-written new version
    alive = tmp_path / f".data.tmp-{os.getppid()}-abc"  # another run still writing: not touched
    alive.mkdir()
    other = tmp_path / f".other.tmp-{dead}-abc"  # another folder's leftover: not touched
    other.mkdir()
    with replacing_dir(final) as new:
        (new / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", alive.name, other.name])

    # Killed between the two renames of a swap: the previous version is put back.
    aside = tmp_path / f".data.old-{dead}-xyz"
    final.rename(aside)
    with replacing_dir(final) as new:
        assert (final / "new.txt").read_text() == "new" and not aside.exists()


def test_replacing_dir_keeps_a_symlink_and_replaces_its_target(tmp_path):
    real = tmp_path / "disk" / "data"
    real.mkdir(parents=True)
    (real / "old.txt").write_text("old")
    link = tmp_path / "data"
    link.symlink_to(real)
    with replacing_dir(link) as new:
        (new / "new.txt").write_text("new")
    assert link.is_symlink() and [p.name for p in real.iterdir()] == ["new.txt"]


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
