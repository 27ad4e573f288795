"""Scaling of the run tables: tile table -> select on synthetic runs of 10^5 .. 10^7 tiles.

Each size runs in a fresh process (so its peak RSS is its own). The process synthesises a run in
the real layout — random tile grids, random unit float16 embeddings (``embeddings/<slide>.npy`` +
``meta.json``), no slide reading — then times the two steps the goal names:

1. *tile table*: the tile stage's table writing (each slide's result stored as it would arrive
   from a worker, then the tables published: ``RUN/tiles/`` + ``tiles.parquet`` + ``slides.parquet``);
2. *select*: the real ``select_stage`` (per-slide prompt retrieval + k-means, run-wide dedup).

Text prompts are embedded by a seeded random stand-in of the encoder's text tower (the tiny test
encoder is 64-d, the benchmark's embeddings are 768-d); everything else is the stage's own code.

By default a run grows by slides (``--tiles-per-slide 5000``: 10^7 tiles = 2,000 slides, as in the
goal), which is how real runs grow; ``--slides N`` fixes the slide count instead (then the per-slide
k-means, k = sqrt(n) by the published rule, grows as n^1.5 per slide by design).
``--old-src DIR`` runs the same sizes with another checkout's ``src`` (e.g. the whole-table code
before the partitioned tables) for the ratio.

    python benchmarks/scaling.py                                  # 1e5 and 1e6, JSON to bench-out/
    python benchmarks/scaling.py --sizes 100000 1000000 10000000  # the goal (minutes; ~15 GB disk)
    git archive f5613fa src | tar -x -C /tmp/old && python benchmarks/scaling.py --old-src /tmp/old/src
    python benchmarks/scaling.py --executors                      # local vs Ray, 1 vs 2 workers (tile)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROJECTS = ["BRCA", "LUAD", "COAD", "SKCM", "KIRC", "HNSC", "PRAD", "GBM"]


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _slide_result(rng: np.random.Generator, n: int) -> dict:
    side = int(np.ceil(np.sqrt(2 * n)))
    cells = rng.choice(side * side, size=n, replace=False)
    return {
        "row": {"status": "ok", "n_tiles": n, "tile_size": 672, "tile_level": 0, "vendor": "synthetic",
                "reader": "none", "width": side * 672, "height": side * 672, "mpp": 0.25,
                "mpp_source": "metadata", "levels": 1, "error": None, "warning": None},
        "x": (cells % side * 672).tolist(),
        "y": (cells // side * 672).tolist(),
        "frac": rng.uniform(0.5, 1.0, n).astype(np.float32).tolist(),
    }  # fmt: skip


def _embeddings(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16)


def run_one(n_tiles: int, n_slides: int, dim: int, work: Path, seed: int = 0) -> dict:
    """Synthesise one run and time tile-table writing and select (in this process)."""
    import pathgen.selection.stage as select_mod
    import pathgen.slides.stage as tile_mod
    from pathgen.config import SelectConfig
    from pathgen.embed import META_VERSION, embedding_path, tiles_hash
    from pathgen.rundir import RunDir, atomic_path, write_json, write_parquet

    new_layout = hasattr(tile_mod, "TileResults")
    root = work / f"run-{n_tiles}-{'new' if new_layout else 'old'}"
    shutil.rmtree(root, ignore_errors=True)
    run = RunDir(root).ensure()
    run.embeddings.mkdir(parents=True)

    def fake_texts(meta: dict, texts: list[str]) -> dict[str, np.ndarray]:
        trng = np.random.default_rng(12345)
        return {
            t: v for t, v in zip(texts, _embeddings(trng, len(texts), dim).astype(np.float32), strict=True)
        }

    select_mod._embed_texts = fake_texts  # the text tower only; see the module docstring

    per_slide = np.full(n_slides, n_tiles // n_slides)
    per_slide[: n_tiles % n_slides] += 1
    records = [{"path": f"/synthetic/slide-{s:05d}.svs", "slide_id": f"slide-{s:05d}",
                "project": PROJECTS[s % len(PROJECTS)]} for s in range(n_slides)]  # fmt: skip
    results = tile_mod.TileResults(run, records) if new_layout else {}
    meta = {"version": META_VERSION, "encoder": "tiny", "backend": "synthetic", "dim": dim, "slides": {}}
    t_gen = t_store = 0.0
    for s, n in enumerate(per_slide.tolist()):
        rng = np.random.default_rng([seed, s])
        t0 = time.perf_counter()
        result = _slide_result(rng, n)
        emb = _embeddings(rng, n, dim)
        sid = records[s]["slide_id"]
        order = np.lexsort((np.asarray(result["x"]), np.asarray(result["y"])))
        with atomic_path(embedding_path(run, sid)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, emb)
        xs, ys = np.asarray(result["x"])[order], np.asarray(result["y"])[order]
        meta["slides"][sid] = {"n_tiles": n, "tiles": tiles_hash(xs, ys, np.full(n, 672)), "bad_tiles": 0}
        del emb
        t1 = time.perf_counter()
        results[s] = result  # as _process stores a finished slide (new: its partition is written here)
        t_store += time.perf_counter() - t1
        t_gen += t1 - t0
    write_json(run.embeddings / "meta.json", meta)
    rss_generated = _rss_mb()

    t0 = time.perf_counter()
    if new_layout:
        tile_mod.write_tile_tables(run, records, results)
    else:  # the whole-table path: every slide's tiles in one in-memory table
        slide_rows, tiles = tile_mod._assemble(records, results)
        write_parquet(tiles, run.tiles)
        write_parquet(tile_mod._slides_table(slide_rows), run.slides)
    t_tables = t_store + time.perf_counter() - t0
    del results
    rss_tables = _rss_mb()

    t0 = time.perf_counter()
    summary = select_mod.select_stage(run, SelectConfig(seed=seed))
    t_select = time.perf_counter() - t0
    out = {
        "layout": "dataset" if new_layout else "single-file (old)",
        "tiles": n_tiles,
        "slides": n_slides,
        "dim": dim,
        "selected": summary["selected"],
        "duplicates_removed": summary["duplicates_removed"],
        "generate_s": round(t_gen, 2),
        "tile_table_s": round(t_tables, 2),
        "select_s": round(t_select, 2),
        "seconds": round(t_tables + t_select, 2),
        "peak_rss_mb": _rss_mb(),
        "rss_after_generation_mb": rss_generated,
        "rss_after_tile_table_mb": rss_tables,
        "tiles_per_s": round(n_tiles / (t_tables + t_select)),
        "disk_mb": round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20, 1),
    }
    shutil.rmtree(root, ignore_errors=True)
    return out


def _table(rows: list[dict], cols: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _child(n: int, slides: int, args: argparse.Namespace, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--one", str(n), "--one-slides", str(slides), "--dim", str(args.dim),
           "--work", str(args.work)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"size {n} with {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _with_ratios(rows: list[dict]) -> None:
    for prev, r in itertools.pairwise(rows):
        r["size_ratio"] = round(r["tiles"] / prev["tiles"], 1)
        r["time_ratio"] = round(r["seconds"] / prev["seconds"], 2)
        r["linearity"] = round(r["time_ratio"] / r["size_ratio"], 2)  # 1.0 = linear


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--tiles-per-slide", type=int, default=5000, help="slides = tiles / this")
    parser.add_argument("--slides", type=int, default=0, help="a fixed slide count for every size")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--old-src", type=Path, help="src of the whole-table code, for the ratio")
    parser.add_argument("--old-max", type=int, default=1_000_000, help="largest size run with --old-src")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--one-slides", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=Path("bench-out/scaling-work"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/scaling.json"))
    parser.add_argument("--executors", action="store_true", help="local vs Ray and 1 vs 2 workers instead")
    parser.add_argument("--exec-slides", type=int, nargs="+", default=[20, 80], help="slides per run")
    parser.add_argument("--exec-side", type=int, default=24000, help="level-0 side of the built slides")
    parser.add_argument("--exec-cpus", type=int, default=2, help="local workers and Ray CPUs")
    args = parser.parse_args(argv)

    if args.executors:
        from scaling_executors import run as run_executors

        results = run_executors(args.work / "executors", args.exec_slides, 4, args.exec_side, args.exec_cpus)
        rows = results["executors"]
        print(_table(rows, list(rows[0])))
        print(f"Ray start-up (not in the stage times): {results['ray_start_s']} s", file=sys.stderr)
        out = args.out.with_name("scaling-executors.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"wrote {out}", file=sys.stderr)
        return 0

    if args.one:
        args.work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run_one(args.one, args.one_slides, args.dim, args.work)))
        return 0
    src = Path(__file__).resolve().parents[1] / "src"
    rows, old_rows = [], []
    for n in args.sizes:
        slides = args.slides or max(1, n // args.tiles_per_slide)
        res = _child(n, slides, args, src)
        rows.append(res)
        print(
            f"{n:>11,} tiles / {slides} slides: {res['seconds']} s, peak {res['peak_rss_mb']} MB",
            file=sys.stderr,
        )
        if args.old_src and n <= args.old_max:
            old = _child(n, slides, args, args.old_src)
            old["new_vs_old_time"] = round(res["seconds"] / old["seconds"], 2)
            old["new_vs_old_peak_rss"] = round(res["peak_rss_mb"] / old["peak_rss_mb"], 2)
            old_rows.append(old)
            print(f"{'':>11} old path: {old['seconds']} s, peak {old['peak_rss_mb']} MB", file=sys.stderr)
    _with_ratios(rows)
    cols = ["layout", "tiles", "slides", "dim", "selected", "tile_table_s", "select_s", "seconds",
            "peak_rss_mb", "disk_mb", "size_ratio", "time_ratio", "linearity"]  # fmt: skip
    print(_table(rows, cols))
    if old_rows:
        print(_table(old_rows, [*cols[:10], "new_vs_old_time", "new_vs_old_peak_rss"]))
    results = {
        "tables": rows,
        "tables_old": old_rows,
        "goal": "1e7 tiles over 2,000 slides, tile table -> select: peak RSS < 3 GB, time linear in tiles",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
