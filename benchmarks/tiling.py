"""Tiling benchmark: time to the tile grid, and patches/s reading tiles, against baselines.

    python benchmarks/tiling.py [--size 50000] [--workers 2] [--tiles 600] [--out bench-out/tiling.json]

(a) Grid: seconds from an unopened slide to the kept-tile list (thumbnail, tissue mask, grid), for
    a built >= 50k x 50k slide and the real slides in shared/data; hs2p's `tile_slide` on the same
    slides when hs2p is installed (`pip install -e .[bench]`).
(b) Reading 672-px tiles at level 0, and reading them at 336 px, with the same tiles, the same
    worker count and one slide handle per worker process for every method:
      - pathgen: `read_tile_array` (picks the pyramid level, area-resizes)
      - baseline: CLAM-style loop, OpenSlide `read_region` at level 0 + `.convert("RGB")` + PIL resize
      - hs2p: its reader (`iter_tile_arrays_from_result`, grouped "supertile" reads) on our tiles
Prints a table with ratios to the baseline and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.sample_data import candidates, shared_data

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_data() or candidates()[0]

# ---------------------------------------------------------------- worker side (one handle per process)
_HANDLES: dict[tuple[str, str], Any] = {}


def _handle(kind: str, path: str) -> Any:
    key = (kind, path)
    if key not in _HANDLES:
        if kind == "pathgen":
            from pathgen.slides import open_slide

            _HANDLES[key] = open_slide(path).open()
        else:
            import openslide

            _HANDLES[key] = openslide.OpenSlide(path)
    return _HANDLES[key]


def _warm(kind: str, path: str) -> int:
    _handle(kind, path)
    if kind == "hs2p":
        import hs2p.wsi.streaming.stream  # noqa: F401  (import cost is not reading cost)
    return os.getpid()


def _read_pathgen(path: str, coords: list[tuple[int, int]], size: int, out: int) -> int:
    from pathgen.slides import read_tile_array

    slide = _handle("pathgen", path)
    checksum = 0
    for x, y in coords:
        checksum += int(read_tile_array(slide, x, y, size, out)[0, 0, 0])
    return checksum


def _read_baseline(path: str, coords: list[tuple[int, int]], size: int, out: int) -> int:
    from PIL import Image

    slide = _handle("openslide", path)
    checksum = 0
    for x, y in coords:
        img = slide.read_region((x, y), 0, (size, size)).convert("RGB")
        if out != size:
            img = img.resize((out, out), Image.Resampling.BILINEAR)
        checksum += int(np.asarray(img)[0, 0, 0])
    return checksum


def _read_hs2p(result: Any) -> int:
    from hs2p.wsi.streaming.stream import iter_tile_arrays_from_result

    checksum = 0
    for arr in iter_tile_arrays_from_result(result=result):
        checksum += int(arr[0, 0, 0])
    return checksum


# ---------------------------------------------------------------- driver side
def _build(size: int, cache: Path) -> Path:
    from pathgen.slides.builder import build_pyramid_tiff, find_sources

    path = cache / f"built-{size}.tif"
    if path.exists():
        print(f"reusing {path}", file=sys.stderr)
        return path
    print(f"building {size} x {size} slide -> {path} ...", file=sys.stderr)
    t0 = time.perf_counter()
    build_pyramid_tiff(path, size, size, find_sources(SHARED / "patches"), mpp=0.5, tile=512, quality=85)
    print(f"built in {time.perf_counter() - t0:.0f} s ({path.stat().st_size / 1e9:.2f} GB)", file=sys.stderr)
    return path


def _page_cache(path: Path) -> None:
    """Read the file once so every method starts from the same (warm) OS page cache."""
    with open(path, "rb") as handle:
        while handle.read(64 << 20):
            pass


def grid_seconds(path: Path) -> dict[str, Any]:
    from pathgen.slides import open_slide
    from pathgen.slides.grid import grid_tiles, resolve_geometry
    from pathgen.slides.tissue import compute_tissue_mask

    t0 = time.perf_counter()
    slide = open_slide(path)
    geom = resolve_geometry(slide.mpp, 672)
    tissue = compute_tissue_mask(slide, 32.0)
    t_mask = time.perf_counter()
    xs, ys, _ = grid_tiles(slide.dimensions, geom.size, tissue, 0.5)
    t1 = time.perf_counter()
    slide.close()
    return {
        "slide": path.name,
        "dimensions": list(slide.dimensions),
        "pathgen_s": t1 - t0,
        "pathgen_mask_s": t_mask - t0,
        "pathgen_grid_only_s": t1 - t_mask,
        "tiles": len(xs),
        "coords": list(zip(xs.tolist(), ys.tolist(), strict=True)),
        "mpp": slide.mpp,
    }


def hs2p_tile(path: Path, spacing: float, tile: int, base_mpp: float | None = None) -> tuple[Any, float]:
    from hs2p import SegmentationConfig, SlideSpec, TilingConfig, tile_slide

    t0 = time.perf_counter()
    result = tile_slide(
        SlideSpec(sample_id=path.stem, image_path=path, spacing_at_level_0=base_mpp),
        tiling=TilingConfig(
            requested_spacing_um=spacing,
            requested_tile_size_px=tile,
            tolerance=0.05,
            overlap=0.0,
            backend="openslide",
        ),
        segmentation=SegmentationConfig(method="hsv", downsample=32),
    )
    return result, time.perf_counter() - t0


def _shards(items: list[Any], n: int) -> list[list[Any]]:
    """Contiguous shards: neighbouring tiles share JPEG tiles, as in a real in-order pass."""
    k = -(-len(items) // n)
    return [items[i : i + k] for i in range(0, len(items), k)]


def _timed(pool: ProcessPoolExecutor, fn: Any, jobs: list[tuple[Any, ...]]) -> float:
    t0 = time.perf_counter()
    for fut in [pool.submit(fn, *job) for job in jobs]:
        fut.result()
    return time.perf_counter() - t0


def read_bench(path: Path, coords: list[tuple[int, int]], workers: int, use_hs2p: bool) -> dict[str, Any]:
    import dataclasses
    import multiprocessing as mp

    shards = _shards(coords, workers)
    out: dict[str, Any] = {"tiles": len(coords), "workers": workers}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for kind in ("pathgen", "openslide", "hs2p"):  # open handles and import before timing
            list(pool.map(_warm, [kind] * workers * 2, [str(path)] * workers * 2))
        for label, out_size in (("672@L0", 672), ("336", 336)):
            row: dict[str, Any] = {}
            jobs = [(str(path), s, 672, out_size) for s in shards]
            row["baseline"] = len(coords) / _timed(pool, _read_baseline, jobs)
            row["pathgen"] = len(coords) / _timed(pool, _read_pathgen, jobs)
            if use_hs2p:
                try:
                    result, _ = hs2p_tile(path, 0.5 * 672 / out_size, out_size)
                    hs_jobs = []
                    for s in shards:
                        xs = np.asarray([c[0] for c in s], dtype=np.int64)
                        ys = np.asarray([c[1] for c in s], dtype=np.int64)
                        tiles = dataclasses.replace(
                            result.tiles,
                            x=xs,
                            y=ys,
                            tissue_fractions=np.ones(len(s)),
                            tile_index=None,
                            tissue_mask=None,
                        )
                        hs_jobs.append((dataclasses.replace(result, tiles=tiles),))
                    row["hs2p"] = len(coords) / _timed(pool, _read_hs2p, hs_jobs)
                    row["hs2p_read_level"] = int(result.read_level)
                except Exception as exc:
                    row["hs2p"] = None
                    row["hs2p_error"] = f"{type(exc).__name__}: {exc}"
            out[label] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50000, help="side of the built slide (px)")
    parser.add_argument("--slide", type=Path, default=None, help="use this slide instead of building one")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tiles", type=int, default=600, help="tiles read per method and size")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench-out" / "slides")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "tiling.json")
    parser.add_argument("--no-hs2p", action="store_true")
    args = parser.parse_args(argv)

    use_hs2p = not args.no_hs2p
    hs2p_note = None
    if use_hs2p:
        try:
            import hs2p  # noqa: F401
        except ImportError as exc:
            use_hs2p, hs2p_note = False, f"hs2p not installed ({exc}); pip install -e .[bench]"
    big = args.slide or _build(args.size, args.cache)
    _page_cache(big)
    slides = [big, *sorted(p for p in (SHARED / "slides").glob("*.svs"))]

    grid_rows = []
    for path in slides:
        row = grid_seconds(path)
        if use_hs2p:
            try:
                base = None if row["mpp"] else 0.5  # hs2p needs an mpp: give the slide one
                _, row["hs2p_s"] = hs2p_tile(path, row["mpp"] or 0.5, 672, base)
            except Exception as exc:
                row["hs2p_s"], row["hs2p_error"] = None, f"{type(exc).__name__}: {exc}"
        grid_rows.append(row)

    coords = grid_rows[0]["coords"]
    start = max(0, len(coords) // 2 - args.tiles // 2)
    sample = coords[start : start + args.tiles]
    reading = read_bench(big, sample, args.workers, use_hs2p)

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "built_slide": {"path": str(big), "size_bytes": big.stat().st_size},
        "grid": [{k: v for k, v in r.items() if k != "coords"} for r in grid_rows],
        "reading": reading,
        "hs2p_note": hs2p_note,
    }
    _print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    grid = Table(title="(a) seconds to the tile grid (open + mask + grid, 672 px, >= 50 % tissue)")
    for col in ("slide", "size", "tiles", "pathgen s", "hs2p s", "hs2p / pathgen"):
        grid.add_column(col)
    for r in report["grid"]:
        hs = r.get("hs2p_s")
        grid.add_row(
            r["slide"], "x".join(map(str, r["dimensions"])), str(r["tiles"]), f"{r['pathgen_s']:.2f}",
            "-" if hs is None else f"{hs:.2f}", "-" if hs is None else f"{hs / r['pathgen_s']:.1f}x",
        )  # fmt: skip
    console.print(grid)
    rd = report["reading"]
    read = Table(title=f"(b) patches/s, {rd['tiles']} tiles of 672 px, {rd['workers']} worker processes")
    for col in ("read", "baseline (CLAM)", "pathgen", "pathgen / baseline", "hs2p", "pathgen / hs2p"):
        read.add_column(col)
    for label in ("672@L0", "336"):
        r = rd[label]
        hs = r.get("hs2p")
        read.add_row(
            label, f"{r['baseline']:.1f}", f"{r['pathgen']:.1f}", f"{r['pathgen'] / r['baseline']:.2f}x",
            "-" if hs is None else f"{hs:.1f}", "-" if hs is None else f"{r['pathgen'] / hs:.2f}x",
        )  # fmt: skip
    console.print(read)
    if report.get("hs2p_note"):
        console.print(f"hs2p: {report['hs2p_note']}")


if __name__ == "__main__":
    main()
