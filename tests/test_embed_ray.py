"""The embed stage under the Ray executor (Ray Data: chunk reads, an encoder actor pool) gives the
local stage's bytes, resumes per slide, and keeps an unreadable tile a zero row plus an error.

One local Ray instance with 2 CPUs for the module; a few dozen tiles of the real sample slides.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pathgen.config import EmbedConfig, ExecutorConfig, TileConfig
from pathgen.embed import embed_stage
from pathgen.rundir import RunDir

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
