"""Stages on Ray under faults: a worker killed mid-stage, a driver killed and re-run.

The slides are links to the real sample slides, so each task does real decoding work for long
enough to be caught running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pathgen.config import ExecutorConfig, TileConfig
from pathgen.executors import make_executor
from pathgen.rundir import RunDir
from pathgen.slides.stage import tile_stage
from raykill import my_ray_workers

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pathgen-vl[ray]'")


@pytest.fixture(scope="module")
def ray_executor():
    executor = make_executor(ExecutorConfig(kind="ray", ray_num_cpus=2, max_retries=3))
    yield executor
    executor.close()


@pytest.fixture
def many_slides(tmp_path: Path, cmu_small: Path, tcga_jp2k: Path) -> Path:
    folder = tmp_path / "slides"
    folder.mkdir()
    for i in range(4):
        (folder / f"cmu-{i}.svs").symlink_to(cmu_small)
        (folder / f"tcga-{i}.svs").symlink_to(tcga_jp2k)
    return folder


def _kill_first_task(killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not killed:
        for pid in my_ray_workers(b"ray::_apply"):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            except ProcessLookupError:
                continue
        time.sleep(0.01)


def _finished(cache: Path) -> list[Path]:
    """Slides whose result is cached (a killed write leaves a hidden temporary file: not one)."""
    return [p for p in cache.glob("*.json") if not p.name.startswith(".")]


def _table(run: Path, name: str) -> list[dict]:
    return sorted(pq.read_table(run / name).to_pylist(), key=lambda r: str(r))


def test_tile_survives_a_killed_worker_and_matches_local(ray_executor, many_slides, tmp_path) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    tile_stage([str(many_slides)], RunDir(local), TileConfig(workers=1))
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_task, args=(killed, stop), daemon=True)
    killer.start()
    summary = tile_stage([str(many_slides)], RunDir(remote), TileConfig(), executor=ray_executor)
    stop.set()
    killer.join(5)
    assert killed, "no running Ray task was caught to kill"
    assert summary["done"] == 8 and summary["failed"] == 0
    tiles = pq.read_table(remote / "tiles.parquet").column("tile_id").to_pylist()
    assert len(tiles) == len(set(tiles))  # nothing written twice
    assert _table(remote, "tiles.parquet") == _table(local, "tiles.parquet")  # nothing lost
    drop = {"path"}  # slides.parquet rows hold the same slides
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(_table(remote, "slides.parquet")) == strip(_table(local, "slides.parquet"))


def test_killed_driver_resumes_without_redoing_finished_slides(many_slides, tmp_path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pathgen.cli", "tile", str(many_slides), "--out", str(run),
           "--executor", "ray"]  # fmt: skip
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    cache = run / ".pathgen" / "tile-cache"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_finished(cache)) < 2:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    proc.wait(30)
    finished = len(_finished(cache))
    assert 2 <= finished < 8, f"the driver was not caught mid-stage ({finished} slides finished)"
    assert not (run / "tiles.parquet").exists()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{finished} reused" in " ".join((again.stdout + again.stderr).split())
    tiles = pq.read_table(run / "tiles.parquet").column("tile_id").to_pylist()
    assert len(tiles) == len(set(tiles))
    assert len(pq.read_table(run / "slides.parquet")) == 8
