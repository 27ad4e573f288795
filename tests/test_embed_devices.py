"""Embedding on several devices of one machine: same bytes as one device, devices checked first.

Two encoder replicas on the CPU (``--devices cpu,cpu``) run the real multi-device path (a thread
and a DataLoader per device, chunks interleaved, results reassembled per slide) anywhere; the GPU
test runs it on every CUDA device when there is one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from pathgen.config import EmbedConfig, TileConfig
from pathgen.embed import embed_stage, read_meta
from pathgen.embedding.devices import resolve_devices
from pathgen.rundir import RunDir

ONE = EmbedConfig(encoder="tiny", workers=0, batch_size=3, device="cpu")


@pytest.fixture(scope="module")
def tiled(tmp_path_factory, cmu_small: Path, tcga_jp2k: Path) -> RunDir:
    """CMU-1-Small-Region and the JPEG 2000 TCGA slide, tiled at 448 px (10 + 46 tiles)."""
    from pathgen.slides.stage import tile_stage

    run = RunDir(tmp_path_factory.mktemp("embed-devices") / "run")
    summary = tile_stage([str(cmu_small), str(tcga_jp2k)], run, TileConfig(size=448, workers=1))
    assert summary["failed"] == 0
    return run


def _copy(tiled: RunDir, dst: Path, bad_tile: bool = False) -> RunDir:
    run = RunDir(dst)
    run.ensure()
    for name in ("slides.parquet", "tiles.parquet"):
        shutil.copy(tiled.root / name, run.root / name)
    if bad_tile:  # one unreadable tile in the middle of the TCGA slide: a zero row and an error
        tiles = pq.read_table(run.tiles).to_pylist()
        tcga = [i for i, t in enumerate(tiles) if t["slide_id"].startswith("tcga")]
        tiles[tcga[7]]["size"] = -5
        pq.write_table(pa.Table.from_pylist(tiles, schema=pq.read_schema(run.tiles)), run.tiles)
    return run


def _files(run: RunDir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.embeddings.iterdir())}


def test_two_cpu_replicas_write_the_bytes_of_one_device(tiled, tmp_path):
    one = _copy(tiled, tmp_path / "one", bad_tile=True)
    two = _copy(tiled, tmp_path / "two", bad_tile=True)
    single = embed_stage(one, ONE)
    multi = embed_stage(two, EmbedConfig(encoder="tiny", workers=1, batch_size=3, devices="cpu,cpu"))
    assert multi["device"] == "cpu,cpu (fp32)" and single["device"] == "cpu (fp32)"
    for key in ("done", "failed", "n_tiles", "bad_tiles"):
        assert multi[key] == single[key]
    assert single["done"] == 2 and single["bad_tiles"] == 1 and single["n_tiles"] > 50
    files = _files(one)
    assert set(files) == {"CMU-1-Small-Region.npy", "tcga-cr-7395-01a-01-ts1.npy", "meta.json", "errors.json"}
    assert _files(two) == files  # arrays, meta and errors: byte for byte
    arr = np.load(two.embeddings / "tcga-cr-7395-01a-01-ts1.npy")
    assert not arr[7].any() and np.abs(np.linalg.norm(arr[8:].astype(np.float32), axis=1) - 1).max() < 1e-2
    # resume holds with several devices: nothing to do, then only the missing slide
    assert embed_stage(two, EmbedConfig(encoder="tiny", devices=["cpu", "cpu"]))["up_to_date"]
    (two.embeddings / "CMU-1-Small-Region.npy").unlink()
    again = embed_stage(two, EmbedConfig(encoder="tiny", workers=0, batch_size=3, devices="cpu,cpu"))
    assert again["done"] == 1 and again["skipped"] == 1 and _files(two) == files


def test_devices_are_checked_before_any_work(tmp_path, tiled):
    import torch

    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert resolve_devices("cpu", []) == ["cpu"]
    assert resolve_devices("cpu", ["cpu", "cpu"]) == ["cpu", "cpu"]  # `devices` replaces `device`
    assert resolve_devices(None, ["all"]) == ([f"cuda:{i}" for i in range(n_cuda)] or ["cpu"])
    with pytest.raises(ValueError, match="CUDA device"):
        resolve_devices(None, ["cpu", f"cuda:{n_cuda}"])
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_devices(None, ["gpu"])
    assert EmbedConfig(devices="cuda:0, cuda:1").devices == ["cuda:0", "cuda:1"]
    for bad in ({"devices": "all,cpu"}, {"devices": "cpu,,cpu"}, {"precision": "fp8"}):
        with pytest.raises(ValidationError):
            EmbedConfig(**bad)
    run = _copy(tiled, tmp_path / "run")
    with pytest.raises(ValueError, match="CUDA device"):
        embed_stage(run, EmbedConfig(encoder="tiny", devices=[f"cuda:{n_cuda}"]))
    assert not run.embeddings.exists()  # refused before a model loaded or a file was written


def test_cli_devices_and_precision(tiled, tmp_path):
    import torch

    from pathgen.cli import app

    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    run = _copy(tiled, tmp_path / "run")
    runner = CliRunner()
    args = ["embed", str(run.root), "--encoder", "tiny", "--workers", "0", "--batch-size", "16"]
    bad = runner.invoke(app, [*args, "--devices", f"cuda:{n_cuda}"])
    assert bad.exit_code == 2 and "CUDA device" in bad.output
    bad = runner.invoke(app, [*args, "--precision", "fp8"])
    assert bad.exit_code == 2 and "precision" in bad.output
    res = runner.invoke(app, [*args, "--devices", "cpu,cpu", "--precision", "bf16"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "cpu,cpu (bf16)" in res.output
    assert set(read_meta(run)["slides"]) == {"CMU-1-Small-Region", "tcga-cr-7395-01a-01-ts1"}


def test_precision_applies_on_cpu_too():
    """bf16 autocast on CPU: close to fp32, not the same numbers (before, it was silently fp32)."""
    import torch

    from pathgen.models.encoders import load_encoder

    images = torch.rand(4, 3, 224, 224)
    exact = load_encoder("tiny", device="cpu").encode_images(images)
    half = load_encoder("tiny", device="cpu", precision="bf16")
    assert half.precision == "bf16"
    low = half.encode_images(images)
    assert not np.array_equal(low, exact)
    assert np.abs(low - exact).max() < 0.05


@pytest.mark.gpu
def test_all_gpus_in_fp16_match_one_gpu_and_the_cpu(tiled, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cpu = _copy(tiled, tmp_path / "cpu")
    gpu1 = _copy(tiled, tmp_path / "gpu1")
    gpus = _copy(tiled, tmp_path / "gpus")
    embed_stage(cpu, EmbedConfig(encoder="tiny", batch_size=8, device="cpu"))
    one = embed_stage(gpu1, EmbedConfig(encoder="tiny", batch_size=8, device="cuda:0"))
    every = embed_stage(gpus, EmbedConfig(encoder="tiny", batch_size=8, devices="all"))
    assert one["device"] == "cuda:0 (fp16)" and every["done"] == 2
    assert every["device"].startswith(",".join(f"cuda:{i}" for i in range(torch.cuda.device_count())))
    names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
    if len(names) == 1:  # identical GPUs run identical kernels on identical batches
        assert _files(gpus) == _files(gpu1)
    for sid in ("CMU-1-Small-Region", "tcga-cr-7395-01a-01-ts1"):
        ref = np.load(cpu.embeddings / f"{sid}.npy").astype(np.float32)
        got = np.load(gpus.embeddings / f"{sid}.npy").astype(np.float32)
        assert np.abs(got - ref).max() < 2e-2  # fp16 autocast vs fp32


def test_a_failing_device_stops_the_others_and_raises(cmu_small):
    """A device whose model fails (out of memory, say) ends the run with its error; no thread lingers."""
    import threading

    from pathgen.embedding.local import run_local
    from pathgen.embedding.plan import EmbedJob, SlideTiles
    from pathgen.models.encoders import load_encoder

    xs = np.arange(0, 2000, 200)
    job = EmbedJob.build([SlideTiles("s", str(cmu_small), "auto", xs, xs, np.full(10, 200))], 2)
    good, broken = load_encoder("tiny", device="cpu"), load_encoder("tiny", device="cpu")

    def out_of_memory(batch):
        raise RuntimeError("CUDA out of memory (injected)")

    broken._image_features = out_of_memory
    with pytest.raises(RuntimeError, match="out of memory"):
        list(run_local(job, [good, broken], workers=0))
    assert not [t for t in threading.enumerate() if t.name.startswith("pathgen-embed")]
