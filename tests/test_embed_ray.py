"""The embed stage under the Ray executor (Ray Data: chunk reads, an encoder actor pool) gives the
local stage's bytes, resumes per slide, keeps an unreadable tile a zero row plus an error, and
survives an encoder actor killed mid-stage (issue 10, item 5).

One local Ray instance with 2 CPUs for the module; a few hundred tiles of the real sample slides.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pathgen.config import EmbedConfig, ExecutorConfig, TileConfig
from pathgen.embed import embed_stage
from pathgen.rundir import RunDir
from raykill import my_ray_workers

CFG = EmbedConfig(encoder="tiny", workers=0, batch_size=8, device="cpu", precision="fp32")
TCGA = "tcga-cr-7395-01a-01-ts1"


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pathgen-vl[ray]'")
    from pathgen.executors import make_executor

    executor = make_executor(ExecutorConfig(kind="ray", ray_num_cpus=2))
    yield executor
    executor.close()


@pytest.fixture
def one_thread():
    """A CPU Ray actor encodes with the one CPU it reserved; the local run does the same here,
    because on CPU a few batch shapes give float results whose last bit depends on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(tiles_from: RunDir, dst: Path) -> RunDir:
    run = RunDir(dst)
    run.ensure()
    for name in ("slides.parquet", "tiles.parquet"):
        shutil.copy(tiles_from.root / name, run.root / name)
    return run


def test_ray_embeds_the_local_bytes_and_resumes_per_slide(
    ray_executor, one_thread, tmp_path, cmu_small, tcga_jp2k
):
    from pathgen.slides.stage import tile_stage

    copy = tmp_path / "copy.svs"
    shutil.copy(cmu_small, copy)
    base = RunDir(tmp_path / "base")
    assert (
        tile_stage([str(cmu_small), str(copy), str(tcga_jp2k)], base, TileConfig(size=448, workers=1))[
            "failed"
        ]
        == 0
    )
    tiles = pq.read_table(base.tiles).to_pylist()
    tiles[[i for i, t in enumerate(tiles) if t["slide_id"] == TCGA][5]]["size"] = -5  # unreadable
    pq.write_table(pa.Table.from_pylist(tiles, schema=pq.read_schema(base.tiles)), base.tiles)

    local = _run(base, tmp_path / "local")
    assert embed_stage(local, CFG)["done"] == 3
    ray_run = _run(base, tmp_path / "ray")
    embed_stage(ray_run, CFG)  # locally, then two slides are lost: Ray must redo those and only those
    kept = ray_run.embeddings / "copy.npy"
    mtime = kept.stat().st_mtime_ns
    for sid in ("CMU-1-Small-Region", TCGA):
        (ray_run.embeddings / f"{sid}.npy").unlink()
    (ray_run.embeddings / "errors.json").unlink()

    summary = embed_stage(ray_run, CFG, executor=ray_executor)
    assert summary["done"] == 2 and summary["skipped"] == 1 and summary["failed"] == 0
    assert summary["bad_tiles"] == 1 and summary["device"] == "ray: 1 CPU actor(s) (fp32)"
    assert kept.stat().st_mtime_ns == mtime
    files = {p.name: p.read_bytes() for p in sorted(local.embeddings.iterdir())}
    assert {p.name: p.read_bytes() for p in sorted(ray_run.embeddings.iterdir())} == files
    assert len(files) == 5  # three arrays, meta.json, errors.json
    again = embed_stage(ray_run, CFG, executor=ray_executor)
    assert again["up_to_date"] and again["skipped"] == 3


def _my_encoder_actors() -> list[int]:
    """Our Ray instance's encoder actors: Ray titles them ``ray::MapWorker(...EncoderActor...)``."""
    return my_ray_workers(b"ray::MapWorker(", b"EncoderActor")


def _written(run: RunDir) -> dict[str, int]:
    """Slides whose array is written -> its mtime (atomic_path's hidden temporary files are not)."""
    found = {}
    for path in run.embeddings.glob("*.npy") if run.embeddings.exists() else []:
        try:
            if not path.name.startswith("."):
                found[path.name] = path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return found


def test_a_killed_encoder_actor_loses_no_slide_and_writes_the_local_bytes(
    ray_executor, one_thread, tmp_path, cmu_small
):
    """SIGKILL the encoder actor once a slide is written and others are still in flight: Ray
    restarts the actor and retries its batches, every slide is written once, with the local bytes."""
    from pathgen.slides.stage import tile_stage

    if not Path("/proc/self/stat").exists():
        pytest.skip("finding Ray's actor processes reads /proc (Linux)")
    folder = tmp_path / "slides"
    folder.mkdir()
    n = 6
    for i in range(n):  # links to a real slide: each chunk is real decoding and encoding work
        (folder / f"cmu-{i}.svs").symlink_to(cmu_small)
    base = RunDir(tmp_path / "base")
    assert tile_stage([str(folder)], base, TileConfig(size=224, workers=1))["done"] == n
    assert pq.read_table(base.tiles).num_rows > 200  # dozens of chunks: seconds of work to land in
    local = _run(base, tmp_path / "local")
    assert embed_stage(local, CFG)["done"] == n
    expected = {p.name: p.read_bytes() for p in sorted(local.embeddings.iterdir())}

    for attempt in range(3):  # the stage may finish before the actor is caught: then run it again
        run = _run(base, tmp_path / f"killed-{attempt}")
        killed: list[int] = []
        before: dict[str, int] = {}  # slides written before the kill -> mtime
        with ThreadPoolExecutor(1) as pool:
            stage = pool.submit(embed_stage, run, CFG, executor=ray_executor)
            while not stage.done() and not killed:
                written = _written(run)
                if 0 < len(written) < n:
                    for pid in _my_encoder_actors():
                        before = written
                        os.kill(pid, signal.SIGKILL)  # as a node failure or an OOM killer would
                        killed.append(pid)
                        break
                time.sleep(0.002)
            summary = stage.result()
        if killed:
            break
    else:
        pytest.fail("no encoder actor was caught mid-stage in 3 runs")

    assert summary["done"] == n and summary["failed"] == 0 and summary["skipped"] == 0
    assert {p.name: p.read_bytes() for p in sorted(run.embeddings.iterdir())} == expected
    after = {name: (run.embeddings / name).stat().st_mtime_ns for name in before}
    assert after == before, "a slide written before the kill is not written again"
    again = embed_stage(run, CFG, executor=ray_executor)
    assert again["up_to_date"] and again["skipped"] == n
