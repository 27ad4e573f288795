"""The export stage on the Ray executor: the same bytes as the local executor, and no pair lost or
written twice when a Ray worker process is killed mid-export (issue 10, items 1, 3, 4 and 5).

One local Ray instance (2 CPUs) serves the whole module: Ray takes seconds to start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_testkit import captioned_run

from pathgen.config import ExecutorConfig, ExportConfig
from pathgen.executors import make_executor
from pathgen.executors.local import LocalExecutor
from pathgen.export.dataset import MARKER
from pathgen.export.stage import export_stage
from pathgen.rundir import RunDir
from raykill import my_ray_workers

CFG = ExportConfig(samples_per_shard=3, image_size=96, gallery_max_items=4)


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pathgen-vl[ray]'")
    executor = make_executor(ExecutorConfig(kind="ray", ray_num_cpus=2, max_retries=2))
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def base_run(cmu_small, tmp_path_factory) -> Path:
    """A captioned run (10 tiles) with no export yet; tests work on copies."""
    return captioned_run(tmp_path_factory.mktemp("ray-export") / "run", cmu_small, n_tiles=10).root


def _copy(base: Path, dest: Path) -> RunDir:
    shutil.copytree(base, dest)
    return RunDir(dest)


def _digests(folder: Path) -> dict[str, str]:
    """Every file of a dataset folder but the mark (it holds the time it was written)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _keys_in_shards(shards: Path) -> list[str]:
    import tarfile

    keys = []
    for tar in sorted(shards.glob("*.tar")):
        with tarfile.open(tar) as t:
            keys += [m.name[: -len(".jpg")] for m in t.getmembers() if m.name.endswith(".jpg")]
    return keys


def test_ray_export_gives_the_local_bytes_and_is_then_up_to_date(base_run, ray_executor, tmp_path):
    local_run = _copy(base_run, tmp_path / "local" / "run")  # same folder name: the card's title
    ray_run = _copy(base_run, tmp_path / "ray" / "run")
    local = export_stage(local_run, CFG, executor=LocalExecutor())
    remote = export_stage(ray_run, CFG, executor=ray_executor)
    assert local["pairs"] == remote["pairs"] == 10 and local["shards"] == remote["shards"] == 4
    assert remote["failed"] == 0 and remote["failed_shards"] == []
    a, b = _digests(local_run.export), _digests(ray_run.export)
    for name in (
        "index.parquet",
        "pathgen.json",
        "shards/00000.tar",
        "shards/00003.tar",
        "shards/sizes.json",
    ):
        assert name in a
    assert a == b, "shards, index.parquet, pathgen.json, card and gallery must not depend on the executor"
    # The executor is not part of the stage's identity: each run is up to date on the other one.
    assert export_stage(ray_run, CFG, executor=LocalExecutor())["up_to_date"] is True
    assert export_stage(local_run, CFG, executor=ray_executor)["up_to_date"] is True
    assert _digests(ray_run.export) == b


def test_a_killed_ray_worker_loses_no_pair_and_writes_none_twice(base_run, ray_executor, tmp_path):
    if not Path("/proc/self/stat").exists():
        pytest.skip("finding Ray's worker processes reads /proc (Linux)")
    cfg = CFG.model_copy(update={"image_size": 448})  # slower tasks: a worker is caught mid-shard
    expected = _digests(_local_export(base_run, tmp_path / "reference" / "run", cfg))
    for attempt in range(3):  # the export may finish before a worker is seen: then try again
        run = _copy(base_run, tmp_path / f"killed-{attempt}" / "run")
        killed: list[int] = []
        result: dict = {}
        worker = threading.Thread(target=_export_into, args=(result, run, cfg, ray_executor))
        worker.start()
        while worker.is_alive() and not killed:
            for pid in my_ray_workers(b"ray::_apply"):
                os.kill(pid, signal.SIGKILL)  # as a node or an OOM killer would
                killed.append(pid)
                break
            time.sleep(0.002)
        worker.join()
        if killed:
            break
    else:
        pytest.fail("no Ray worker was caught running a shard in 3 exports")
    assert result["pairs"] == 10 and result["failed"] == 0 and result["failed_shards"] == []
    index = pq.read_table(run.export / "index.parquet").to_pylist()
    keys = [r["key"] for r in index]
    assert len(keys) == len(set(keys)) == 10, "every pair exactly once in the index"
    assert sorted(_keys_in_shards(run.export / "shards")) == sorted(keys), "and exactly once in the shards"
    assert len(json.loads((run.export / "pathgen.json").read_text())) == 10
    assert _digests(run.export) == expected, "the retried shard is the same bytes; no partial file is left"
    assert export_stage(run, cfg, executor=LocalExecutor())["up_to_date"] is True


def _export_into(result: dict, run: RunDir, cfg: ExportConfig, executor) -> None:
    result.update(export_stage(run, cfg, executor=executor))


def _local_export(base: Path, dest: Path, cfg: ExportConfig = CFG) -> Path:
    run = _copy(base, dest)
    export_stage(run, cfg, executor=LocalExecutor())
    return run.export
