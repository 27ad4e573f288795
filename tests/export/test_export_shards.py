"""The shard as the export's unit of work (issue 10, item 1), on the local executor.

A patch that cannot be read leaves its shard one sample short (shard numbers never shift); a shard
whose task fails as a whole is an empty placeholder plus error rows, the other shards are written,
and the stage is not marked done so a rerun writes it. Any number of workers gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
from export_testkit import captioned_run

from pathgen.config import ExportConfig
from pathgen.executors.local import LocalExecutor
from pathgen.export import sharding
from pathgen.export.dataset import MARKER
from pathgen.export.materialise import materialise
from pathgen.export.stage import export_stage

CFG = ExportConfig(samples_per_shard=3, image_size=64, gallery_max_items=4)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _members(tar: Path) -> list[str]:
    with tarfile.open(tar) as t:
        return [m.name for m in t.getmembers()]


def test_failed_reads_leave_their_shard_short_and_keep_shard_numbers(cmu_small, tmp_path):
    """Two slides, 4 tiles each, 3 per shard: [A A A] [A B B] [B B]; slide B then disappears."""
    other = tmp_path / "gone.svs"
    other.symlink_to(cmu_small)
    run = captioned_run(tmp_path / "run", [cmu_small, other], n_tiles=4)
    other.unlink()

    summary = export_stage(run, CFG)
    assert summary["pairs"] == 4 and summary["failed"] == 4 and summary["failed_shards"] == []
    sizes = json.loads((run.export / "shards" / "sizes.json").read_text())
    assert sizes == {"00000.tar": 3, "00001.tar": 1, "00002.tar": 0}
    assert _members(run.export / "shards" / "00002.tar") == []  # an empty tar keeps {00000..00002} whole
    assert summary["train_data"].endswith("{00000..00002}.tar")
    index = pq.read_table(run.export / "index.parquet").to_pylist()
    assert [r["shard"] for r in index] == ["00000.tar"] * 3 + ["00001.tar"]
    errors = json.loads((run.export / "errors.json").read_text())
    assert [e["tile_id"].split(":")[0] for e in errors] == ["gone"] * 4
    assert all(e["error"].startswith("open:") for e in errors)
    assert "read_failed" in (run.export / "README.md").read_text()
    assert export_stage(run, CFG)["up_to_date"] is True  # the data's fault, not the run's: done


def test_a_failed_shard_task_keeps_the_others_and_leaves_the_stage_not_done(cmu_small, tmp_path, monkeypatch):
    run = captioned_run(tmp_path / "run", cmu_small, n_tiles=8)
    real_shard = sharding.run_shard

    def shard_one_fails(job, **kwargs):
        if job.index == 1:
            raise OSError("No space left on device")
        return real_shard(job, **kwargs)

    monkeypatch.setattr(sharding, "run_shard", shard_one_fails)
    summary = export_stage(run, CFG)
    assert summary["failed_shards"] == ["00001.tar"] and summary["failed"] == 3 and summary["pairs"] == 5
    sizes = json.loads((run.export / "shards" / "sizes.json").read_text())
    assert sizes == {"00000.tar": 3, "00001.tar": 0, "00002.tar": 2}
    errors = json.loads((run.export / "errors.json").read_text())
    assert len(errors) == 3 and all(
        "shard 00001.tar failed: OSError: No space left" in e["error"] for e in errors
    )
    assert "shard_failed" in (run.export / "README.md").read_text()
    assert run.stage_status("export") is None, "an export with a failed shard is never done"

    monkeypatch.undo()
    again = export_stage(run, CFG)
    assert again["up_to_date"] is False and again["pairs"] == 8 and again["failed_shards"] == []
    assert again["shards_kept"] == 2 and again["shards_written"] == 1  # the placeholder is never kept
    assert json.loads((run.export / "shards" / "sizes.json").read_text())["00001.tar"] == 3
    assert export_stage(run, CFG)["up_to_date"] is True


def _records(n: int) -> list[dict]:
    spots = [(x, y) for y in range(0, 2967 - 672, 336) for x in range(0, 2220 - 672, 336)]
    return [
        {"wsi_id": "CMU-1-Small-Region", "position": [str(x), str(y)], "caption": f"Dermis {i}."}
        for i, (x, y) in enumerate(spots[:n])
    ]


def test_workers_never_change_the_bytes(slides_dir, tmp_path, monkeypatch):
    src = tmp_path / "records.json"
    src.write_text(json.dumps(_records(12)))
    one = materialise(src, slides_dir, tmp_path / "one", image_size=64, per_shard=2, gallery_max=3, workers=1)
    monkeypatch.setattr(sharding, "PARALLEL_MIN_PAIRS", 0)  # 12 patches: parallel all the same
    two = materialise(
        src, slides_dir, tmp_path / "two", image_size=64, per_shard=2, gallery_max=3, workers=2,
        executor=LocalExecutor(),
    )  # fmt: skip
    assert one["pairs"] == two["pairs"] == 12 and two["shards"] == 6
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
