"""From per-item costs to a budget: items, CPU-hours, GPU-hours, VLM calls and tokens for N slides.

:func:`calibrate` measures (or reads from benchmark JSON) the cost of one item of every stage and
the items per slide; :func:`project` multiplies them out for N slides, so every projection is
linear in N by construction and two projections of one calibration differ only in N.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from pathgen.config import RunConfig
from pathgen.planning.assumptions import DEFAULT_VLM_TOKENS_PER_S, Assumptions
from pathgen.planning.bench import read_benches
from pathgen.rundir import RunDir
from pathgen.slides.grid import resolve_geometry

PLAN_KIND = "pathgen-plan"
# What a calibration holds; a plan keeps all of it, so `project(plan, n)` re-projects a saved plan.
CALIBRATION_KEYS = ("kind", "version", "machine", "assumptions", "bench", "per_slide", "calibration", "costs",
                    "notes", "vlm_source", "client_source")  # fmt: skip
PROMPT_TILES = 16  # selected tiles of --run whose prompts are rendered
CAPTION_JPEG_QUALITY = 90  # what the OpenAI-compatible client sends (ImagePart.data_url default)


def _run_counts(run: RunDir) -> dict[str, Any]:
    """Measured tiles and selected tiles per slide of an existing run (its ok slides)."""
    import pyarrow.parquet as pq

    slides = pq.read_table(run.require(run.slides, "tile")).to_pylist()
    ok = [s for s in slides if s.get("status") == "ok"]
    if not ok:
        raise ValueError(f"{run.slides}: no slide was tiled successfully; nothing to measure")
    tiles = pq.read_metadata(run.require(run.tiles, "tile")).num_rows
    selected_file = pq.ParquetFile(run.require(run.selected, "select"))  # counted, not loaded
    n_selected = selected_file.metadata.num_rows
    first = next(selected_file.iter_batches(batch_size=PROMPT_TILES), None)
    width = sum(int(s["width"]) for s in ok) / len(ok)
    height = sum(int(s["height"]) for s in ok) / len(ok)
    return {
        "slides": ok,
        "n_slides": len(ok),
        "tiles_per_slide": tiles / len(ok),
        "selected_per_slide": n_selected / len(ok),
        "selected_rows": first.to_pylist() if first is not None else [],
        "width": width,
        "height": height,
    }


def _sample_prompt_rows(slide: Path, coords: list[tuple[int, int]], size: int) -> tuple[list, list]:
    """One calibration tile of the packaged sample, with its manifest's project and report."""
    import csv

    from pathgen.sample_data import sample_manifest

    with open(sample_manifest(), newline="", encoding="utf-8") as handle:
        meta = next((r for r in csv.DictReader(handle) if Path(r["path"]).name == slide.name), {})
    x, y = coords[0]
    slides = [{"slide_id": "calibration", "path": str(slide), "project": meta.get("project") or None,
               "report": meta.get("report") or None}]  # fmt: skip
    selected = [{"tile_id": f"calibration:{x}:{y}:{size}", "slide_id": "calibration", "x": x, "y": y,
                 "size": size, "reason": "cluster", "score": 0.0, "cluster": 0, "prompt": None}]  # fmt: skip
    return slides, selected


def calibrate(
    cfg: RunConfig,
    assumptions: Assumptions | None = None,
    run: str | os.PathLike[str] | None = None,
    bench_json: list[Path] | None = None,
) -> dict[str, Any]:
    """Cost per item of every stage and items per slide, each with where it came from."""
    from pathgen.planning import calibrate as cal

    a = assumptions or Assumptions()
    started = time.perf_counter()
    bench, bench_src = read_benches(list(bench_json or []))
    slide = cal.sample_slide()
    tiling = cal.calibrate_tiling(cfg.tile, slide)
    coords, sample_size = tiling.pop("coords"), tiling["tile_size_level0"]
    counts = _run_counts(RunDir(run)) if run is not None else None
    notes: list[str] = [
        f"calibration slide: the packaged sample {tiling['slide']} "
        f"({tiling['width']} x {tiling['height']} px, "
        f"{tiling['tiles']} of {tiling['grid_cells']} grid cells kept)"
    ]

    # items per slide
    width = counts["width"] if counts else a.slide_width
    height = counts["height"] if counts else a.slide_height
    tile_px = resolve_geometry(a.slide_mpp, cfg.tile.size, cfg.tile.mpp).size  # as the tile stage does
    cells = (int(width) // tile_px) * (int(height) // tile_px)
    share = a.tissue_share if a.tissue_share is not None else tiling["tissue_share"]
    if counts:
        tiles_per_slide, selected_per_slide = counts["tiles_per_slide"], counts["selected_per_slide"]
        count_src = f"measured: {counts['n_slides']} ok slide(s) of {Path(run).name}"  # type: ignore[arg-type]
    else:
        tiles_per_slide = cells * share
        selected_per_slide = min(float(cfg.select.per_slide_cap), tiles_per_slide)
        count_src = (
            "assumed slide size x "
            + ("assumed" if a.tissue_share is not None else "measured")
            + " tissue share"
        )

    # tile: thumbnail + mask + grid, per slide
    if "tile_s_per_gpx" in bench:
        tile_s = bench["tile_s_per_gpx"] * width * height / 1e9
        tile_src = f"bench: {bench_src['tile_s_per_gpx']}"
    else:
        decoded_mpx = width * height / a.thumbnail_level_downsample**2 / 1e6
        tile_s = tiling["s_per_decoded_mpx"] * decoded_mpx
        tile_src = "measured: sample slide, scaled by decoded thumbnail pixels"

    # embed: read at the encoder's size on CPU, the image tower on the GPU (or CPU)
    encoder = cal.calibrate_encoder(cfg.embed.encoder)
    read_embed = cal.calibrate_reading(slide, coords, sample_size, encoder["image_size"])
    on_cpu = (cfg.embed.device or "").startswith("cpu")
    gpu_here = None if on_cpu else cal.gpu_encoder_cost(encoder["architecture"])
    encoder["gpu_s_per_tile_measured"] = gpu_here
    if on_cpu:
        embed_gpu, gpu_src = 0.0, "embed.device is cpu"
    elif "embed_gpu_s_per_tile" in bench:
        embed_gpu, gpu_src = bench["embed_gpu_s_per_tile"], f"bench: {bench_src['embed_gpu_s_per_tile']}"
    elif gpu_here is not None:
        embed_gpu, gpu_src = gpu_here, "measured on this machine's GPU (random weights)"
    else:
        embed_gpu = encoder["gflops_per_tile"] * 1e9 / (a.gpu_tflops * 1e12)
        gpu_src = "FLOPs counted on the stand-in / assumed gpu_tflops"
    embed_cpu = read_embed + (encoder["cpu_s_per_tile"] if on_cpu else 0.0)

    # select: one slide's retrieval + k-means, per tile
    if "select_s_per_tile" in bench:
        select_s, select_src = bench["select_s_per_tile"], f"bench: {bench_src['select_s_per_tile']}"
    else:
        n_cal = int(min(max(tiles_per_slide, 2), a.select_tiles_cap))
        select_s = cal.calibrate_select(n_cal, encoder["embed_dim"], cfg.select.per_slide_cap, cfg.select)
        select_src = f"measured: {n_cal} random embeddings of one slide"

    # caption: prompts from the caption stage's dry run; the image read + JPEG once per tile
    if counts and counts["selected_rows"]:
        p_slides, p_selected = counts["slides"], counts["selected_rows"]
        prompt_src = f"caption --dry-run on {len(p_selected)} selected tile(s) of {Path(run).name}"  # type: ignore[arg-type]
    else:
        p_slides, p_selected = _sample_prompt_rows(slide, coords, sample_size)
        prompt_src = "caption --dry-run on a sample-slide tile (its manifest's report)"
    prompts = cal.calibrate_prompts(cfg.caption, p_slides, p_selected)
    caption_read = cal.calibrate_reading(slide, coords, sample_size, cfg.caption.image_size)
    caption_jpeg = cal.calibrate_jpeg(
        slide, coords, sample_size, cfg.caption.image_size, CAPTION_JPEG_QUALITY
    )
    client_call = bench.get("client_cpu_s_per_call", a.client_cpu_s_per_call)
    if a.vlm_tokens_per_s is not None:
        vlm_tps, vlm_src = a.vlm_tokens_per_s, "given"
    elif "vlm_tokens_per_s" in bench:
        vlm_tps, vlm_src = bench["vlm_tokens_per_s"], f"bench: {bench_src['vlm_tokens_per_s']}"
    else:
        vlm_tps, vlm_src = DEFAULT_VLM_TOKENS_PER_S, "assumed"

    # export: read at the export size + JPEG at its quality, per selected tile
    if "export_s_per_item" in bench:
        export_s, export_src = bench["export_s_per_item"], f"bench: {bench_src['export_s_per_item']}"
    else:
        export_s = cal.calibrate_reading(slide, coords, sample_size, cfg.export.image_size)
        export_s += cal.calibrate_jpeg(
            slide, coords, sample_size, cfg.export.image_size, cfg.export.jpeg_quality
        )
        export_src = "measured: sample tiles read + JPEG-encoded"

    if cfg.caption.model == "tiny" and not cfg.caption.base_url:
        notes.append("caption.model is the offline tiny model: its GPU-hours use the same VLM throughput")
    return {
        "kind": PLAN_KIND,
        "version": 1,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "assumptions": a.as_dict(),
        "bench": {k: {"value": v, "file": bench_src[k]} for k, v in bench.items()},
        "per_slide": {
            "tiles": tiles_per_slide,
            "selected": selected_per_slide,
            "source": count_src,
            "slide_width": width,
            "slide_height": height,
            "tile_px_level0": tile_px,
            "grid_cells": cells,
            "tissue_share": share if not counts else None,
        },
        "calibration": {
            "tiling": tiling,
            "encoder": encoder,
            "read_s": {"embed": read_embed, "caption": caption_read},
            "caption_jpeg_s": caption_jpeg,
            "prompts": {**prompts, "source": prompt_src},
            "seconds": round(time.perf_counter() - started, 2),
        },
        "costs": {
            "tile": {"cpu_s": tile_s, "gpu_s": 0.0, "source": tile_src},
            "embed": {"cpu_s": embed_cpu, "gpu_s": embed_gpu, "source": f"read measured; encoder: {gpu_src}"},
            "select": {"cpu_s": select_s, "gpu_s": 0.0, "source": select_src},
            "caption": {
                "client_cpu_s_per_call": client_call,
                "vlm_tokens_per_s": vlm_tps,
                "read_s": caption_read,
                "jpeg_s": caption_jpeg,
            },
            "export": {"cpu_s": export_s, "gpu_s": 0.0, "source": export_src},
        },
        "notes": notes,
        "vlm_source": vlm_src,
        "client_source": (
            f"bench: {bench_src['client_cpu_s_per_call']}" if "client_cpu_s_per_call" in bench else "assumed"
        ),
    }


def basis(source: str) -> str:
    """Measured, assumed or from a benchmark file (or a mix), from a stage's source text."""
    kinds = [k for k, marks in (("measured", ("measured", "dry-run")), ("bench", ("bench:",)),
             ("assumed", ("assumed",))) if any(m in source for m in marks)]  # fmt: skip
    return " + ".join(kinds) or "measured"


def _row(stage: str, unit: str, per_slide: float, n: int, cpu_s: float, gpu_s: float, source: str,
         calls: float = 0.0, tokens: float = 0.0) -> dict[str, Any]:  # fmt: skip
    items = per_slide * n
    return {
        "stage": stage,
        "basis": basis(source),
        "unit": unit,
        "items_per_slide": per_slide,
        "items": items,
        "cpu_s_per_item": cpu_s,
        "gpu_s_per_item": gpu_s,
        "source": source,
        "cpu_h": items * cpu_s / 3600,
        "gpu_h": items * gpu_s / 3600,
        "calls": items * calls,
        "tokens": items * tokens,
    }


def project(cal: dict[str, Any], n_slides: int) -> dict[str, Any]:
    """The plan for ``n_slides`` slides from one calibration (or a saved plan): rows per stage,
    totals, assumptions."""
    if not isinstance(n_slides, int) or n_slides <= 0:
        raise ValueError(f"--slides must be a positive number of slides, got {n_slides}")
    a, per, costs = cal["assumptions"], cal["per_slide"], cal["costs"]
    prompts = cal["calibration"]["prompts"]
    reask = 1 + a["reask_rate"] * a["reask_cost"]
    calls_per_tile = sum(prompts["calls_per_tile"].values()) * (1 + a["reask_rate"])
    tok_in = prompts["tokens_in_per_tile"] * reask
    tok_out = prompts["tokens_out_per_tile"] * reask
    c = costs["caption"]
    caption_cpu = c["read_s"] + c["jpeg_s"] + calls_per_tile * c["client_cpu_s_per_call"]
    caption_gpu = (tok_in + tok_out) / c["vlm_tokens_per_s"]
    rows = [
        _row("tile", "slide", 1.0, n_slides, costs["tile"]["cpu_s"], 0.0, costs["tile"]["source"]),
        _row("embed", "tile", per["tiles"], n_slides, costs["embed"]["cpu_s"], costs["embed"]["gpu_s"],
             costs["embed"]["source"]),
        _row("select", "tile", per["tiles"], n_slides, costs["select"]["cpu_s"], 0.0,
             costs["select"]["source"]),
        _row("caption", "selected tile", per["selected"], n_slides, caption_cpu, caption_gpu,
             f"{prompts['source']}; VLM throughput {cal['vlm_source']}", calls_per_tile, tok_in + tok_out),
        _row("export", "selected tile", per["selected"], n_slides, costs["export"]["cpu_s"], 0.0,
             costs["export"]["source"]),
    ]  # fmt: skip
    caption = rows[3]
    caption["tokens_in"] = caption["items"] * tok_in
    caption["tokens_out"] = caption["items"] * tok_out
    totals = {k: sum(r[k] for r in rows) for k in ("cpu_h", "gpu_h", "calls", "tokens")}
    return {
        **{k: cal[k] for k in CALIBRATION_KEYS},
        "slides": n_slides,
        "stages": rows,
        "totals": totals,
        "pairs": per["selected"] * n_slides,
        "assumption_lines": assumption_lines(cal),
    }


def assumption_lines(cal: dict[str, Any]) -> list[str]:
    """Every assumption the plan rests on, one sentence each (printed and written to the JSON)."""
    a, per, prompts = cal["assumptions"], cal["per_slide"], cal["calibration"]["prompts"]
    tiling = cal["calibration"]["tiling"]
    lines = []
    if per["tissue_share"] is not None:
        lines.append(
            f"slide size {per['slide_width']:,.0f} x {per['slide_height']:,.0f} px at level 0 "
            f"({Assumptions.why('slide_width')}); tiles of {per['tile_px_level0']} px -> "
            f"{per['grid_cells']:,} grid cells x tissue share {per['tissue_share']:.2f} "
            + ("(assumed)" if a["tissue_share"] is not None else f"(measured on {tiling['slide']})")
            + f" = {per['tiles']:,.0f} tiles a slide"
        )
        lines.append(
            f"selected a slide = min(select.per_slide_cap, tiles) = {per['selected']:,.0f}; no tile assumed "
            "lost to near-duplicate removal"
        )
    else:
        lines.append(
            f"tiles and selected tiles a slide: {per['source']} "
            f"({per['tiles']:,.1f} / {per['selected']:,.1f})"
        )
    if "tile_s_per_gpx" not in cal["bench"]:
        lines.append(
            f"tiling cost scales with thumbnail pixels decoded: the slide's pyramid level at "
            f"{a['thumbnail_level_downsample']:g}x serves the thumbnail "
            f"({Assumptions.why('thumbnail_level_downsample')})"
        )
    enc = cal["calibration"]["encoder"]
    lines.append(
        f"encoder: {enc['method']}; {enc['gflops_per_tile']:.3g} GFLOP (matmuls) a tile "
        f"at {enc['image_size']} px"
    )
    if "FLOPs" in cal["costs"]["embed"]["source"]:
        lines.append(
            f"GPU encoder throughput: {a['gpu_tflops']:g} effective TFLOP/s ({Assumptions.why('gpu_tflops')})"
        )
    lines.append(
        f"tokens a call: prompt text at ~4 characters a token + {prompts['image_tokens']} image tokens for "
        f"describe and revise; typical answers {prompts['typical_out']} tokens "
        "(caption --dry-run's estimates)"
    )
    lines.append(
        f"re-asks: {a['reask_rate']:.0%} of calls asked again ({Assumptions.why('reask_rate')}), "
        f"each costing {a['reask_cost']:g} first call in tokens"
    )
    lines.append(
        f"VLM throughput: {cal['costs']['caption']['vlm_tokens_per_s']:,.0f} tokens per GPU-second "
        + (
            f"({cal['vlm_source']})"
            if cal["vlm_source"] != "assumed"
            else f"({Assumptions.why('vlm_tokens_per_s')})"
        )
    )
    lines.append(
        f"caption client CPU: {cal['costs']['caption']['client_cpu_s_per_call'] * 1000:.2f} ms a call "
        + (
            f"({cal['client_source']})"
            if cal["client_source"] != "assumed"
            else "(assumed: " + Assumptions.why("client_cpu_s_per_call") + ")"
        )
        + " + one tile read and JPEG-encoded a tile (measured)"
    )
    lines.append("CPU-hours are single-core hours of this machine's cores; GPU-hours are one GPU's")
    lines.append("train and eval are not planned (they depend on epochs and benchmarks, not on slides)")
    return lines


def make_plan(
    cfg: RunConfig,
    n_slides: int,
    assumptions: Assumptions | None = None,
    run: str | os.PathLike[str] | None = None,
    bench_json: list[Path] | None = None,
) -> dict[str, Any]:
    """Calibrate on this machine, then project for ``n_slides`` slides."""
    if not isinstance(n_slides, int) or n_slides <= 0:
        raise ValueError(f"--slides must be a positive number of slides, got {n_slides}")
    return project(calibrate(cfg, assumptions, run, bench_json), n_slides)
