"""Short measurements on this machine: each returns a cost per item and says how it was measured.

Every measurement uses stand-ins, never the configured models: the packaged sample slide for
tiling and tile reading, the configured open_clip architecture built with random weights two blocks
deep for the encoder (a full ViT-L at 336 px takes ~10 s to build and ~8 s a tile on a busy 2-core
CPU; every block costs the same, so two are enough), and the caption stage's own dry run, with a
placeholder endpoint that is never contacted, for the prompts' tokens.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.config import CaptionConfig, TileConfig, dump_section

STAND_IN_URL = "http://127.0.0.1:9/v1"  # the discard port; a dry run builds a client, never calls it
STAND_IN_MODEL = "pathgen-plan-stand-in"
SAMPLE_SLIDE = ("slides", "CMU-1-Small-Region.svs")
READ_TILES = 4  # tiles read per measurement: enough to see the cost, cheap on a busy machine


def _best(fn: Any, repeat: int = 2) -> tuple[float, Any]:
    """Seconds of the fastest of ``repeat`` calls (the first may pay imports and cold caches)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def sample_slide() -> Path:
    from pathgen.sample_data import sample_path

    return sample_path(*SAMPLE_SLIDE)


def calibrate_tiling(cfg: TileConfig, slide: Path) -> dict[str, Any]:
    """Tile the calibration slide with the configured settings; seconds, tiles, decoded pixels."""
    from pathgen.slides import open_slide
    from pathgen.slides.stage import tile_slide

    params = dump_section(cfg)
    params.pop("workers", None)
    rec = {"path": str(slide), "slide_id": "calibration"}
    seconds, result = _best(lambda: tile_slide(rec, params, None))
    row = result["row"]
    if row["status"] != "ok":
        raise ValueError(f"calibration slide {slide} did not tile: {row['status']} {row.get('error')}")
    with open_slide(slide) as handle:
        level = handle.best_level_for_downsample(cfg.thumbnail_downsample)
        lw, lh = handle.level_dimensions[level]
        downsample = handle.level_downsamples[level]
    size = int(row["tile_size"])
    cells = (int(row["width"]) // size) * (int(row["height"]) // size)
    return {
        "slide": slide.name,
        "width": int(row["width"]),
        "height": int(row["height"]),
        "mpp": row["mpp"],
        "tile_size_level0": size,
        "tiles": int(row["n_tiles"]),
        "grid_cells": cells,
        "tissue_share": round(int(row["n_tiles"]) / cells, 4) if cells else 0.0,
        "seconds": round(seconds, 4),
        "thumbnail_level_downsample": float(downsample),
        "decoded_mpx": round(lw * lh / 1e6, 3),
        "s_per_decoded_mpx": seconds / max(lw * lh / 1e6, 1e-9),
        "coords": [(int(x), int(y)) for x, y in zip(result["x"], result["y"], strict=True)][:READ_TILES],
    }


def calibrate_reading(slide: Path, coords: list[tuple[int, int]], size: int, out_size: int) -> float:
    """Seconds to read one ``size``-px tile as ``out_size`` px (mean over the calibration tiles)."""
    from pathgen.slides import read_tile

    if not coords:
        raise ValueError("the calibration slide has no tissue tile to read")
    read_tile(slide, *coords[0], size, out_size)  # open the handle, warm the decoder
    t0 = time.perf_counter()
    for x, y in coords:
        read_tile(slide, x, y, size, out_size)
    return (time.perf_counter() - t0) / len(coords)


def calibrate_jpeg(
    slide: Path, coords: list[tuple[int, int]], size: int, out_size: int, quality: int
) -> float:
    """Seconds to JPEG-encode one ``out_size``-px tile at ``quality`` (what caption and export do)."""
    from pathgen.slides import read_tile

    image = read_tile(slide, *coords[0], size, out_size).convert("RGB")

    def encode() -> int:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        return buf.tell()

    seconds, _ = _best(encode, repeat=3)
    return seconds


def encoder_architecture(spec: str) -> tuple[str, str]:
    """(open_clip architecture to time, how it relates to the spec). Never opens a checkpoint."""
    from pathgen.models.encoders import TINY_MODEL, parse_open_clip_spec

    spec = spec.strip()
    if spec == "tiny":
        return TINY_MODEL, "the configured tiny encoder"
    if spec.startswith("open_clip:"):
        name, ckpt, _ = parse_open_clip_spec(spec)
        if name.startswith(("local-dir:", "hf-hub:")):
            return "ViT-L-14-336", f"stand-in for {name} (its config is not read): ViT-L-14-336"
        note = "random weights" + (f"; the checkpoint {ckpt} is not loaded" if ckpt else "")
        return name, note
    return "ViT-L-14-336", f"stand-in for {spec!r} (not loaded): the published ViT-L-14-336"


# The text tower is never timed: a minimal plain one replaces the configured one, so no Hugging Face
# text model is built (that would download) and no 49k-token embedding is initialised.
MINIMAL_TEXT = {"context_length": 77, "vocab_size": 1000, "width": 64, "heads": 1, "layers": 1}


def _image_tower(name: str, vision: dict[str, Any] | None, device: str) -> tuple[Any, int]:
    """``name`` with random weights and the minimal text tower (``vision`` overrides its vision
    config when given), and the side of its input images."""
    import open_clip
    import torch

    from pathgen.models.encoders import quiet_no_weights_warning, register_model_configs

    register_model_configs()
    overrides: dict[str, Any] = {"text_cfg": dict(MINIMAL_TEXT)}
    if vision is not None:
        overrides["vision_cfg"] = vision
    with torch.random.fork_rng(devices=[]), quiet_no_weights_warning():
        torch.manual_seed(0)
        model = open_clip.create_model(name, pretrained=None, device=device, **overrides).eval()
    size = model.visual.image_size
    return model, size[0] if isinstance(size, (tuple, list)) else int(size)


def _forward_cost(name: str, vision: dict[str, Any] | None) -> dict[str, Any]:
    """Seconds and FLOPs of one image through ``name``'s image tower (random weights), built with
    ``vision`` as its vision config when given; also the FLOPs of its first transformer block."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, side = _image_tower(name, vision, "cpu")
    x = torch.randn(1, 3, side, side)
    # Counted with autograd on: under inference mode attention takes a fused fast path whose
    # projections the counter does not see. Timed under inference mode, as the embed stage runs.
    counter = FlopCounterMode(display=False)
    with counter:
        model.encode_image(x)
    block = [sum(v.values()) for k, v in counter.get_flop_counts().items() if k.endswith("resblocks.0")]
    with torch.inference_mode():  # the counted call above was the warm-up
        seconds, _ = _best(lambda: model.encode_image(x))
    return {
        "seconds": seconds,
        "flops": float(counter.get_total_flops()),
        "block_flops": float(block[0]) if block else None,
        "side": side,
        "dim": int(getattr(model.visual, "output_dim", 0) or 0),
    }


def calibrate_encoder(spec: str) -> dict[str, Any]:
    """CPU seconds and (matmul) FLOPs per tile of the encoder's image tower, with random weights.

    A plain open_clip ViT (layers in its config) is built two blocks deep: FLOPs are exact at any
    depth (the stem plus one block's, times the depth), and time, too noisy on a busy machine to be
    differenced, is the two-block tower's seconds per FLOP times the full depth's FLOPs. Any other
    architecture is built whole.
    """
    import open_clip

    from pathgen.models.encoders import register_model_configs

    register_model_configs()
    name, relation = encoder_architecture(spec)
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {name!r} in encoder spec {spec!r}")
    vision = dict(cfg.get("vision_cfg", {}))
    layers = vision.get("layers")
    cost = None
    if isinstance(layers, int) and layers > 2 and "timm_model_name" not in vision:
        cost = _forward_cost(name, {**vision, "layers": 2})
    if cost is not None and cost["block_flops"]:
        flops = cost["flops"] + (layers - 2) * cost["block_flops"]  # type: ignore[operator]
        seconds = cost["seconds"] * flops / cost["flops"]
        method = f"{name}, {relation}; timed at 2 of {layers} blocks, scaled by FLOPs"
    else:
        cost = _forward_cost(name, None)
        flops, seconds = cost["flops"], cost["seconds"]
        method = f"{name}, {relation}; whole image tower timed"
    return {
        "architecture": name,
        "method": method,
        "image_size": cost["side"],
        "embed_dim": cost["dim"] or int(cfg.get("embed_dim", 0)),
        "cpu_s_per_tile": seconds,
        "gflops_per_tile": flops / 1e9,
    }


def calibrate_select(n_tiles: int, dim: int, cap: int, select: Any) -> float:
    """Seconds per tile of one slide's selection on random unit embeddings of ``n_tiles`` rows."""
    from pathgen.selection.select import select_slide, single_threaded_blas

    rng = np.random.default_rng(0)
    n = max(2, n_tiles)
    dim = max(dim, 8)

    def unit(a: np.ndarray) -> np.ndarray:
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    emb = unit(rng.standard_normal((n, dim), dtype=np.float32))
    prompts = ([f"attribute {i}" for i in range(20)], unit(rng.standard_normal((20, dim), dtype=np.float32)))
    finding = ([f"finding {i}" for i in range(5)], unit(rng.standard_normal((5, dim), dtype=np.float32)))

    def run() -> Any:
        with single_threaded_blas():  # as the stage does
            return select_slide(
                emb, attribute=prompts, finding=finding, top_k_attribute=select.top_k_attribute,
                top_k_finding=select.top_k_finding, cap=cap, seed=0,
            )  # fmt: skip

    seconds, _ = _best(run, repeat=1)
    return seconds / n


def stand_in_caption_config(cfg: CaptionConfig) -> CaptionConfig:
    """The caption config with every model swapped for a placeholder endpoint that is never called.

    The dry run renders prompts from the prompt files and the tile's text; the model only names the
    generator, which a dry run builds and closes without a call. Swapping it means no local model
    is loaded (a tiny VLM alone takes seconds), no weights are read, and no key is needed.
    """
    agents = {
        name: getattr(cfg, name).model_copy(update={"model": None, "base_url": None})
        for name in ("describe", "revise", "summarize")
    }
    return cfg.model_copy(
        update={"model": STAND_IN_MODEL, "base_url": STAND_IN_URL, "api_key_env": None, **agents}
    )


def calibrate_prompts(
    cfg: CaptionConfig, slides: list[dict[str, Any]], selected: list[dict[str, Any]]
) -> dict[str, Any]:
    """Tokens and calls per tile from `caption --dry-run` on ``selected`` tiles of ``slides``."""
    from pathgen.agents.stage import IMAGE_TOKENS, TYPICAL_OUT, caption_stage
    from pathgen.rundir import RunDir, write_parquet

    if not selected:
        raise ValueError("no tile to render the caption prompts for")
    with tempfile.TemporaryDirectory(prefix="pathgen-plan-") as tmp:
        run = RunDir(tmp).ensure()
        write_parquet(slides, run.slides)
        write_parquet(selected, run.selected)
        summary = caption_stage(run, stand_in_caption_config(cfg), dry_run=True, progress=False)
    tiles = max(1, int(summary["tiles"]))
    return {
        "tiles_rendered": int(summary["tiles"]),
        "calls_per_tile": {a: n / tiles for a, n in summary["calls"].items()},
        "tokens_in_per_tile": summary["tokens_in_est"] / tiles,
        "tokens_out_per_tile": summary["tokens_out_est"] / tiles,
        "image_tokens": IMAGE_TOKENS,
        "typical_out": dict(TYPICAL_OUT),
    }


def gpu_encoder_cost(name: str, batch: int = 64) -> float | None:
    """Seconds per tile of ``name``'s whole image tower on this machine's GPU (fp16 autocast, random
    weights), or None without one. Its result, in a `pathgen plan --json` file, can be handed to a
    plan on another machine with `--bench-json`."""
    import torch

    if not torch.cuda.is_available():
        return None
    model, side = _image_tower(name, None, "cuda")  # the minimal text tower: nothing downloads
    x = torch.randn(batch, 3, side, side, device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        model.encode_image(x)  # warm-up: kernels, cuDNN autotuning
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(3):
            model.encode_image(x)
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (3 * batch)
