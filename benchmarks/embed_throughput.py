"""Embed throughput: the pathgen `embed` stage next to a plain open_clip loop over the same tiles.

    python benchmarks/embed_throughput.py [--encoder open_clip:ViT-B-32] [--tiles 400]
        [--batch-size 64] [--workers 2] [--devices cpu | cuda:0 | cuda:0,cuda:1 | all]
        [--precision fp16|bf16|fp32] [--size 20000] [--repeat 2] [--out bench-out/embed_throughput.json]

Builds (once, cached under bench-out/) a big synthetic slide with ``pathgen.slides.builder`` from
the real H&E patches of shared/data, tiles it at 672 px and keeps the first ``--tiles`` tiles.
Then, with the same model, batch size, reader workers, precision and tiles, it measures tiles/s of:

- ``baseline``: the loop one writes by hand: a torch DataLoader reading the tiles through
  ``pathgen.slides.read_tile`` with the model's own preprocessing, ``model.encode_image`` (under
  ``torch.autocast`` for fp16/bf16), L2-normalised, copied to the CPU as float16;
- ``pathgen``: ``embed_stage`` on the first device of ``--devices`` (reading, encoding, per-slide
  assembly and the atomic writes included);
- ``pathgen_all``: ``embed_stage`` on every device of ``--devices`` when there are several, and
  ``scaling`` = its tiles/s over one device's.

Model loading is outside every timing. Runs alternate (baseline, pathgen, pathgen_all) ``--repeat``
times; the best of each is compared (a shared machine only ever slows a run down). Prints a table
and writes JSON with the ratios, the device names (``torch.cuda.get_device_name``) and versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-out"


def build_run(size: int, n_tiles: int) -> Any:
    """A run directory holding ``n_tiles`` 672-px tiles of a built ``size`` x ``size`` slide."""
    import pyarrow.parquet as pq

    from pathgen.config import TileConfig
    from pathgen.rundir import RunDir
    from pathgen.slides.builder import build_pyramid_tiff
    from pathgen.slides.stage import tile_stage

    slide = OUT / f"embed-slide-{size}.tif"
    if not slide.exists():
        print(f"building a {size} x {size} px slide -> {slide}")
        build_pyramid_tiff(slide, size)
    run = RunDir(OUT / f"embed-run-{size}-{n_tiles}")
    if not run.tiles.exists():
        tile_stage([str(slide)], run, TileConfig(size=672, workers=1))
        table = pq.read_table(run.tiles)
        if len(table) < n_tiles:
            raise SystemExit(f"the slide has {len(table)} tiles, fewer than --tiles {n_tiles}: raise --size")
        pq.write_table(table.slice(0, n_tiles), run.tiles)
    return run


def baseline(run: Any, encoder: str, device: str, precision: str, batch_size: int, workers: int) -> float:
    """tiles/s of a plain open_clip loop over the run's tiles (the model built here, untimed)."""
    import open_clip
    import pyarrow.parquet as pq
    import torch
    from torch.utils.data import DataLoader

    from pathgen.models.encoders import TINY_MODEL, parse_open_clip_spec, register_model_configs
    from pathgen.slides import read_tile

    register_model_configs()
    name, ckpt = (TINY_MODEL, None) if encoder == "tiny" else parse_open_clip_spec(encoder)[:2]
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=ckpt, device=device)
    model.eval()
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    tiles = pq.read_table(run.tiles).to_pylist()
    path = pq.read_table(run.slides).column("path")[0].as_py()

    class Tiles(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(tiles)

        def __getitem__(self, i: int) -> Any:
            t = tiles[i]
            return preprocess(read_tile(path, t["x"], t["y"], t["size"], size))

    dev = torch.device(device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    loader = DataLoader(
        Tiles(), batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda",
        prefetch_factor=4 if workers else None,
    )  # fmt: skip
    out = []
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
        for images in loader:
            feats = model.encode_image(images.to(dev, non_blocking=True))
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).half().cpu().numpy())
    seconds = time.perf_counter() - t0
    assert sum(len(o) for o in out) == len(tiles)
    return len(tiles) / seconds


def pathgen(
    run: Any, encoder: str, devices: list[str], precision: str, batch_size: int, workers: int
) -> float:
    """tiles/s of the embed stage (its own timing: reading, encoding and writing, not model load)."""
    from pathgen.config import EmbedConfig
    from pathgen.embed import embed_stage

    shutil.rmtree(run.embeddings, ignore_errors=True)
    cfg = EmbedConfig(
        encoder=encoder, batch_size=batch_size, workers=workers, devices=devices, precision=precision
    )
    summary = embed_stage(run, cfg)
    if summary["done"] != 1 or summary["bad_tiles"]:
        raise SystemExit(f"embed did not embed every tile: {summary}")
    return float(summary["n_tiles"]) / float(summary["seconds"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="open_clip:ViT-B-32", help="an open_clip spec, or tiny")
    parser.add_argument("--tiles", type=int, default=400)
    parser.add_argument("--size", type=int, default=20000, help="side of the built slide in px")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="reader processes (per device for pathgen)")
    parser.add_argument("--devices", default=None, help="cuda:0,cuda:1 | all | cpu  [default: cuda:0 or cpu]")
    parser.add_argument(
        "--precision", default=None, help="fp16 | bf16 | fp32 [default: fp16 on CUDA, fp32 on CPU]"
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT / "embed_throughput.json")
    args = parser.parse_args(argv)
    if args.encoder != "tiny" and not args.encoder.startswith("open_clip:"):
        parser.error("--encoder must be tiny or an open_clip spec (the baseline is an open_clip loop)")

    import torch

    from pathgen.config import EmbedConfig
    from pathgen.embedding.devices import device_names, resolve_devices

    devices = resolve_devices(None, EmbedConfig(devices=args.devices or []).devices)
    precision = args.precision or ("fp16" if devices[0].startswith("cuda") else "fp32")
    run = build_run(args.size, args.tiles)
    common = (args.encoder, precision, args.batch_size, args.workers)
    rates: dict[str, list[float]] = {"baseline": [], "pathgen": []}
    if len(devices) > 1:
        rates["pathgen_all"] = []
    baseline(run, args.encoder, devices[0], precision, args.batch_size, 0)  # warm: page cache, kernels
    for _ in range(args.repeat):
        rates["baseline"].append(baseline(run, args.encoder, devices[0], *common[1:]))
        rates["pathgen"].append(pathgen(run, args.encoder, devices[:1], *common[1:]))
        if len(devices) > 1:
            rates["pathgen_all"].append(pathgen(run, args.encoder, devices, *common[1:]))
    best = {k: max(v) for k, v in rates.items()}
    result: dict[str, Any] = {
        "encoder": args.encoder,
        "tiles": args.tiles,
        "tile_size": 672,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "precision": precision,
        "devices": devices,
        "device_names": device_names(devices),
        "cpu_count": __import__("os").cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tiles_per_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "best_tiles_per_s": {k: round(v, 2) for k, v in best.items()},
        "ratio_pathgen_vs_baseline": round(best["pathgen"] / best["baseline"], 3),
    }
    if "pathgen_all" in best:
        result["scaling_all_vs_one_device"] = round(best["pathgen_all"] / best["pathgen"], 3)
    print(f"\nembed throughput, {args.encoder}, {args.tiles} tiles of 672 px, batch {args.batch_size}, "
          f"{precision}, {', '.join(result['device_names'])}")  # fmt: skip
    print(f"{'method':<14}{'best tiles/s':>14}{'runs':>28}")
    for key, values in rates.items():
        runs = " ".join(f"{x:.1f}" for x in values)
        print(f"{key:<14}{best[key]:>14.1f}{runs:>28}")
    print(f"pathgen / baseline: {result['ratio_pathgen_vs_baseline']:.3f}")
    if "scaling_all_vs_one_device" in result:
        print(f"{len(devices)} devices / 1 device: {result['scaling_all_vs_one_device']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
