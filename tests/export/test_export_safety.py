"""A dataset folder is replaced whole, readable by the group, and never written over foreign files.

Covers: an export interrupted over an existing export (in-process and by SIGKILL), the stage marker
after such an interruption, file modes under different umasks, and refusing a user's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_testkit import captioned_run
from typer.testing import CliRunner

import pathgen
from pathgen.cli import app
from pathgen.config import ExportConfig
from pathgen.export import sharding
from pathgen.export.dataset import MARKER, DatasetFolderError
from pathgen.export.materialise import materialise
from pathgen.export.stage import export_stage
from pathgen.rundir import RunDir

SRC = str(Path(pathgen.__file__).resolve().parents[1])
CLI = "import sys; from pathgen.cli import app; sys.argv[0] = 'pathgen'; app()"
CFG_A = ExportConfig(samples_per_shard=2, image_size=64)
CFG_B = ExportConfig(samples_per_shard=1, image_size=96)


@pytest.fixture(scope="module")
def base_run(cmu_small, tmp_path_factory) -> Path:
    """A captioned run with no export yet; tests work on copies."""
    return captioned_run(tmp_path_factory.mktemp("safety") / "run", cmu_small).root


def _copy(base: Path, dest: Path) -> RunDir:
    shutil.copytree(base, dest)
    return RunDir(dest)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _check_consistent(out: Path) -> int:
    """The shards, sizes.json, index and pathgen.json of ``out`` describe one and the same export."""
    sizes = json.loads((out / "shards" / "sizes.json").read_text())
    tars = sorted(p.name for p in (out / "shards").glob("*.tar"))
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert tars == sorted(sizes) and sum(sizes.values()) == len(index)
    assert len(json.loads((out / "pathgen.json").read_text())) == len(index)
    assert (out / MARKER).is_file()
    return len(index)


def test_interrupted_export_keeps_the_previous_one_and_is_never_up_to_date(base_run, tmp_path, monkeypatch):
    run = _copy(base_run, tmp_path / "run")
    first = export_stage(run, CFG_A)
    assert first["pairs"] == 8 and first["shards"] == 4
    before = _digests(run.export)

    real_shard = sharding.run_shard

    def interrupted_at_shard_three(job, **kwargs):
        if job.index == 3:  # Ctrl-C while the fourth shard is written (not a failed item: it stops all)
            raise KeyboardInterrupt("killed mid-export")
        return real_shard(job, **kwargs)

    monkeypatch.setattr(sharding, "run_shard", interrupted_at_shard_three)
    with pytest.raises(KeyboardInterrupt, match="killed mid-export"):
        export_stage(run, CFG_B)  # other shard size and image size: a mix would show
    monkeypatch.undo()
    assert _digests(run.export) == before, "the previous export must stay whole, never mixed"
    assert sorted(p.name for p in run.root.iterdir() if "export" in p.name) == ["export"]
    assert run.stage_status("export") is None, "an interrupted export must invalidate the marker"

    # The previous settings again: rebuilt (never 'up to date' after an interruption), same bytes.
    again = export_stage(run, CFG_A)
    assert again["up_to_date"] is False and again["shards_kept"] == 4 and again["shards_written"] == 0
    assert _check_consistent(run.export) == 8
    assert export_stage(run, CFG_A)["up_to_date"] is True
    # The other settings: the whole export is replaced, no shard of the previous one stays.
    other = export_stage(run, CFG_B)
    assert other["shards"] == 8 and _check_consistent(run.export) == 8
    with pq.ParquetFile(run.export / "index.parquet") as f:
        assert f.metadata.num_rows == 8


def _records(n: int) -> list[dict]:
    """``n`` release records on the 12 patch positions of CMU-1-Small-Region (2220 x 2967)."""
    spots = [(x, y) for y in range(0, 2967 - 672, 672) for x in range(0, 2220 - 672, 672)]
    return [
        {"wsi_id": "CMU-1-Small-Region", "position": [str(x), str(y)], "caption": f"Dermis {i}."}
        for i, (x, y) in enumerate(spots[i % len(spots)] for i in range(n))
    ]


def test_sigkilled_export_over_an_existing_one_leaves_it_whole(slides_dir, tmp_path):
    out = tmp_path / "out"
    old_src = tmp_path / "old.json"
    old_src.write_text(json.dumps(_records(12)))
    materialise(old_src, slides_dir, out, image_size=64, per_shard=4, gallery_max=4)
    before = _digests(out)

    new_src = tmp_path / "new.json"
    new_src.write_text(json.dumps(_records(120)))
    args = ["export", "--from-pathgen-json", str(new_src), "--slides", str(slides_dir), "--out", str(out)]
    args += ["--samples-per-shard", "1", "--image-size", "96", "--workers", "1"]
    started = time.time_ns()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_mtime_ns >= started for p in tmp_path.rglob("*.tar")):
                break  # a new shard exists somewhere: the export is mid-way
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert _digests(out) == before, "a killed export must leave the previous dataset whole"
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers, "the killed run's folder is beside the dataset, not in it"

    summary = materialise(new_src, slides_dir, out, image_size=96, per_shard=100, gallery_max=4)
    assert summary["pairs"] == 120 and _check_consistent(out) == 120
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "leftovers are cleaned up"


def test_a_folder_pathgen_did_not_write_is_never_replaced(slides_dir, tmp_path):
    src = tmp_path / "records.json"
    src.write_text(json.dumps(_records(2)))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(DatasetFolderError, match=r"notes\.txt"):
        materialise(src, slides_dir, out, image_size=64)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    args = ["export", "--from-pathgen-json", str(src), "--slides", str(slides_dir), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "pathgen did not write" in " ".join(result.output.split())
    assert (out / "notes.txt").read_text() == "my notes"

    only_readme = tmp_path / "project"
    only_readme.mkdir()
    (only_readme / "README.md").write_text("my project")
    with pytest.raises(DatasetFolderError, match="not a dataset folder pathgen wrote"):
        materialise(src, slides_dir, only_readme, image_size=64)
    assert (only_readme / "README.md").read_text() == "my project"

    # A dataset pathgen wrote (also one without the mark, from an older pathgen) is replaced.
    ok = tmp_path / "ok"
    materialise(src, slides_dir, ok, image_size=64)
    (ok / MARKER).unlink()
    assert materialise(src, slides_dir, ok, image_size=64)["pairs"] == 2 and (ok / MARKER).is_file()


def _modes(folder: Path) -> dict[str, int]:
    entries = [folder, *folder.rglob("*")]
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in entries}


def test_export_files_follow_the_umask(base_run, tmp_path):
    run = _copy(base_run, tmp_path / "shared")
    with umask(0o022):
        export_stage(run, CFG_A)
    modes = _modes(run.export)
    assert len(modes) > 15 and {m for n, m in modes.items() if (run.export / n).is_file()} == {0o644}
    assert {m for n, m in modes.items() if (run.export / n).is_dir()} == {0o755}

    private = _copy(base_run, tmp_path / "private")
    with umask(0o077):
        export_stage(private, CFG_A)
    modes = _modes(private.export)
    assert all(m & 0o077 == 0 for m in modes.values()), modes

    # Re-exported under umask 022 with shards kept from the private export: they become readable.
    with umask(0o022):
        again = export_stage(private, CFG_A.model_copy(update={"gallery_max_items": 3}))
    assert again["shards_kept"] == 4
    assert all(m & 0o044 == 0o044 for m in _modes(private.export).values())
