"""Selection at scale, and embedding throughput through the pyramid vs at level 0.

Part 1 runs the select stage's own functions (per-slide prompt retrieval + k-means quota, then
the run-wide near-duplicate pass and the output table) over random 768-d unit embeddings spread
over 1,000 slides, at 10^5 and 10^6 tiles, and reports seconds, peak memory (RSS of a fresh
process per size) and the
ratio between the sizes (goal: linear, 10^6 in under two minutes on a 2-core machine).
Embeddings are generated slide by slide from a seed, as the stage reads them file by file.

Part 2 builds a pyramidal slide from real H&E tiles (``pathgen.slides.builder``), grids it into
672-px tiles, and embeds them with the tiny encoder at 224 px, reading each tile either through
``pathgen.slides.read_tile`` (which serves a 672->224 read from the 2x level) or by decoding level
0 and resizing: the baseline every pipeline that ignores the pyramid pays.

    python benchmarks/selection.py                 # both parts, JSON to bench-out/selection.json
    python benchmarks/selection.py --sizes 100000  # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    """Peak resident memory of this process so far (each size runs in its own process)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run_selection(n_tiles: int, n_slides: int, dim: int, seed: int = 0) -> dict:
    from pathgen.config import SelectConfig
    from pathgen.selection.select import REASONS, select_slide, single_threaded_blas, slide_seed
    from pathgen.selection.stage import dedup_and_table

    cfg = SelectConfig(seed=seed)
    rng = np.random.default_rng(seed)
    projects = [_unit(rng.standard_normal((20, dim))).astype(np.float32) for _ in range(33)]
    prompt_texts = [f"attribute prompt {i}" for i in range(20)]
    per_slide = np.full(n_slides, n_tiles // n_slides)
    per_slide[: n_tiles % n_slides] += 1
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    t_select = 0.0
    parts, vecs = [], []
    for s, n in enumerate(per_slide.tolist()):
        srng = np.random.default_rng([seed, s])
        emb = _unit(srng.standard_normal((n, dim), dtype=np.float32)).astype(np.float16)  # as stored
        finding = _unit(srng.standard_normal((5, dim), dtype=np.float32))
        t1 = time.perf_counter()
        e32 = _unit(emb.astype(np.float32))
        sid = f"slide-{s:05d}"
        with single_threaded_blas():  # as the stage does
            picks = select_slide(
                e32,
                attribute=(prompt_texts, projects[s % 33]),
                finding=([f"finding {i}" for i in range(5)], finding),
                top_k_attribute=cfg.top_k_attribute,
                top_k_finding=cfg.top_k_finding,
                cap=cfg.per_slide_cap,
                seed=slide_seed(cfg.seed, sid),
            )
        t_select += time.perf_counter() - t1
        rows = picks.rows
        parts.append({"slide_id": sid, "tile_id": np.array([f"{sid}:{r}:0:672" for r in rows.tolist()]),
                      "x": rows, "y": np.zeros(len(rows), np.int64), "size": np.full(len(rows), 672),
                      "reason": picks.reason, "score": picks.score, "cluster": picks.cluster,
                      "prompt": picks.prompt})  # fmt: skip
        vecs.append(e32[rows].astype(np.float16))
    t2 = time.perf_counter()
    table, removed = dedup_and_table(parts, vecs, cfg)
    t_dedup = time.perf_counter() - t2
    total = t_select + t_dedup  # generating the random embeddings is not part of selection
    wall = time.perf_counter() - t0
    reasons = table.column("reason").to_pylist()
    return {
        "tiles": n_tiles,
        "slides": n_slides,
        "dim": dim,
        "picked": int(sum(len(v) for v in vecs)),
        "selected": table.num_rows,
        "duplicates_removed": int(sum(removed.values())),
        **{f"by_{r}": reasons.count(r) for r in REASONS},
        "seconds": round(total, 2),
        "wall_with_generation": round(wall, 2),
        "seconds_per_slide_selection": round(t_select, 2),
        "seconds_dedup_and_table": round(t_dedup, 2),
        "peak_rss_mb": _rss_mb(),
        "rss_before_mb": rss_before,
        "tiles_per_s": round(n_tiles / total),
    }


def run_throughput(work: Path, slide_px: int, tile: int, limit: int) -> dict:
    import cv2
    import torch

    from pathgen.models import load_encoder
    from pathgen.slides import open_slide, read_tile
    from pathgen.slides.builder import build_pyramid_tiff

    path = work / f"bench-{slide_px}.tif"
    if not path.exists():
        build_pyramid_tiff(path, slide_px, seed=0)
    enc = load_encoder("tiny", device="cuda" if torch.cuda.is_available() else "cpu")
    size = enc.image_size
    with open_slide(path) as slide:
        w, h = slide.dimensions
        coords = [(x, y) for y in range(0, h - tile + 1, tile) for x in range(0, w - tile + 1, tile)]
        rng = np.random.default_rng(0)
        coords = [coords[i] for i in sorted(rng.choice(len(coords), min(limit, len(coords)), replace=False))]

        def read_pyramid(x: int, y: int):
            return read_tile(slide, x, y, tile, size)

        def read_level0(x: int, y: int):
            from PIL import Image

            arr = slide.read_region((x, y), 0, (tile, tile))
            return Image.fromarray(cv2.resize(arr, (size, size), interpolation=cv2.INTER_AREA))

        levels = [round(d, 3) for d in slide.level_downsamples]
        out: dict = {"slide_px": slide_px, "tile": tile, "out_size": size, "tiles": len(coords),
                     "levels": levels, "device": str(enc.device)}  # fmt: skip
        for name, reader in (("level0", read_level0), ("pyramid", read_pyramid)):
            reader(*coords[0])  # warm the handle and caches
            t0 = time.perf_counter()
            images = [reader(x, y) for x, y in coords]
            t_read = time.perf_counter() - t0
            t1 = time.perf_counter()
            batch = torch.stack([enc.preprocess(im) for im in images])
            enc.encode_images(batch, batch_size=64)
            t_enc = time.perf_counter() - t1
            out[name] = {
                "read_tiles_per_s": round(len(coords) / t_read, 1),
                "embed_tiles_per_s": round(len(coords) / (t_read + t_enc), 1),
                "read_s": round(t_read, 2),
                "encode_s": round(t_enc, 2),
            }
    out["read_speedup"] = round(out["pyramid"]["read_tiles_per_s"] / out["level0"]["read_tiles_per_s"], 2)
    out["embed_speedup"] = round(out["pyramid"]["embed_tiles_per_s"] / out["level0"]["embed_tiles_per_s"], 2)
    return out


def _table(rows: list[dict], cols: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--slides", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--slide-px", type=int, default=16384, help="side of the built slide (part 2)")
    parser.add_argument("--tiles", type=int, default=200, help="tiles embedded per reader (part 2)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=Path("bench-out"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/selection.json"))
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(run_selection(args.one, args.slides, args.dim)))
        return 0
    results: dict = {"selection": []}
    for n in args.sizes:  # a fresh process per size, so its peak memory is its own
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--slides",
            str(args.slides),
            "--dim",
            str(args.dim),
        ]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        results["selection"].append(res)
        print(
            f"selection {n:>9,} tiles: {res['seconds']} s, peak RSS {res['peak_rss_mb']} MB", file=sys.stderr
        )
    sel = results["selection"]
    base = sel[0]
    for r in sel:
        scale = r["tiles"] / base["tiles"]
        r["time_ratio"] = round(r["seconds"] / base["seconds"], 2)
        r["size_ratio"] = round(scale, 1)
        r["linearity"] = round(r["time_ratio"] / scale, 2)  # 1.0 = linear; < 1 sublinear
    print(_table(sel, ["tiles", "slides", "picked", "selected", "duplicates_removed", "seconds",
                       "seconds_per_slide_selection", "seconds_dedup_and_table", "peak_rss_mb",
                       "size_ratio", "time_ratio", "linearity"]))  # fmt: skip
    if not args.skip_throughput:
        args.work.mkdir(parents=True, exist_ok=True)
        tp = run_throughput(args.work, args.slide_px, 672, args.tiles)
        results["throughput"] = tp
        rows = [{"reader": k, **tp[k]} for k in ("level0", "pyramid")]
        print(_table(rows, ["reader", "read_tiles_per_s", "embed_tiles_per_s", "read_s", "encode_s"]))
        print(f"pyramid vs level 0: read x{tp['read_speedup']}, read+embed x{tp['embed_speedup']} "
              f"({tp['tiles']} tiles of 672 px -> {tp['out_size']} px, levels {tp['levels']}, "
              f"{tp['device']})")  # fmt: skip
    results["machine"] = {"cpus": __import__("os").cpu_count(), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
