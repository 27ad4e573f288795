"""MIL training cost: time per epoch and peak memory, streaming slides vs loading them all.

Synthetic feature files (``--slides`` x ``--tiles`` x ``--dim`` float32, the CLAM/TRIDENT layout
pathgen writes) feed one epoch of ABMIL training (batch of one slide, AdamW) in a fresh process per
mode, so each peak RSS is its own:

- ``floor``: imports, model and optimizer, no slide read (what any run costs);
- ``streaming``: pathgen's loader, one slide read from disk per step (:func:`pathgen.mil.bags.iter_bags`);
- ``load-all``: the baseline most MIL code uses, every slide in memory before the epoch (run only
  when it fits under ``--baseline-max-gb``; otherwise its size is reported as projected).

Ratios: streaming's peak above the floor vs one slide's size (the goal: about 1-2, whatever the
number of slides), and load-all's vs streaming's peak. Only ``--distinct`` different files are
written and the rest are hard links to them (1,000 x 10,000 x 768 floats would be 31 GB of disk):
every step still opens and reads a whole file, but the page cache serves repeats, so the time per
epoch is a lower bound for cold disks.

    python benchmarks/mil.py                      # 1,000 slides x 10,000 tiles x 768-d
    python benchmarks/mil.py --slides 50 --tiles 2000 --out bench-out/mil-quick.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_data(folder: Path, slides: int, tiles: int, dim: int, distinct: int) -> float:
    """Write the feature files; returns one slide's features in MB."""
    from pathgen.mil.h5 import h5_path, write_slide

    rng = np.random.default_rng(0)
    coords = np.stack([np.arange(tiles) % 100 * 256, np.arange(tiles) // 100 * 256], 1)
    for i in range(slides):
        path = h5_path(folder, f"slide{i:05d}")
        if i < distinct:
            feats = rng.standard_normal((tiles, dim), dtype=np.float32)
            if i % 2:
                feats[:10, :8] += 2.0  # something to learn
            write_slide(path, feats, coords, {"encoder": "synthetic", "patch_size": 256, "patch_level": 0})
        elif not path.exists():
            os.link(h5_path(folder, f"slide{i % distinct:05d}"), path)
    return tiles * dim * 4 / 2**20


def child(mode: str, folder: Path, epochs: int, threads: int) -> dict[str, Any]:
    import torch

    from pathgen.mil.bags import plan_bags
    from pathgen.mil.h5 import read_slide
    from pathgen.mil.labels import LabelSet, SlideLabel
    from pathgen.mil.models import build_model, mil_loss

    torch.set_num_threads(threads)
    ids = sorted(p.stem for p in (folder / "h5_files").glob("*.h5"))
    labels = LabelSet("bench", ["a", "b"], [SlideLabel(s, "ab"[int(s[-5:]) % 2 % 2]) for s in ids])
    plan = plan_bags(folder, labels)
    model = build_model("abmil", plan.dim, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    out: dict[str, Any] = {"mode": mode, "slides": len(plan.bags)}
    if mode == "floor":
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out
    t0 = time.perf_counter()
    memory = [read_slide(b.path).features for b in plan.bags] if mode == "load-all" else None
    out["load_s"] = round(time.perf_counter() - t0, 2)
    rng = np.random.default_rng(0)
    per_epoch = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i in rng.permutation(len(plan.bags)):
            bag = plan.bags[i]
            feats = memory[i] if memory is not None else read_slide(bag.path).features
            loss = mil_loss(model(torch.from_numpy(feats)), torch.tensor(bag.label))
            opt.zero_grad()
            loss.backward()
            opt.step()
            del feats
        per_epoch.append(time.perf_counter() - t0)
    out["epoch_s"] = round(min(per_epoch), 2)
    out["slides_per_s"] = round(len(plan.bags) / min(per_epoch), 1)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(mode: str, folder: Path, epochs: int, threads: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--data",
        str(folder),
        "--epochs",
        str(epochs),
        "--threads",
        str(threads),
    ]
    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=int, default=1000)
    ap.add_argument("--tiles", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument(
        "--distinct", type=int, default=10, help="different files written; the rest are hard links"
    )
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-max-gb", type=float, default=4.0, help="run load-all only below this size")
    ap.add_argument(
        "--data", type=Path, default=None, help="keep the feature files here (default: a temp folder)"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "mil.json")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.data, args.epochs, args.threads)))
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp) / "features"
        t0 = time.perf_counter()
        slide_mb = make_data(folder, args.slides, args.tiles, args.dim, min(args.distinct, args.slides))
        took = time.perf_counter() - t0
        print(f"data: {args.slides} x {args.tiles} x {args.dim}-d ({slide_mb:.1f} MB a slide), {took:.1f}s")
        total_gb = slide_mb * args.slides / 1024
        rows = [
            run_child("floor", folder, args.epochs, args.threads),
            run_child("streaming", folder, args.epochs, args.threads),
        ]
        if total_gb <= args.baseline_max_gb:
            rows.append(run_child("load-all", folder, args.epochs, args.threads))
        else:
            rows.append(
                {
                    "mode": "load-all",
                    "slides": args.slides,
                    "skipped": f"{total_gb:.1f} GB > --baseline-max-gb",
                    "peak_rss_mb": rows[0]["peak_rss_mb"] + slide_mb * args.slides,
                    "projected": True,
                }
            )
    floor = rows[0]["peak_rss_mb"]
    for r in rows:
        r["above_floor_mb"] = round(r["peak_rss_mb"] - floor, 1)
        r["vs_one_slide"] = round(r["above_floor_mb"] / slide_mb, 2)
        r["peak_rss_mb"] = round(r["peak_rss_mb"], 1)
    stream, load_all = rows[1], rows[2]
    result = {
        "benchmark": "mil",
        "slides": args.slides,
        "tiles": args.tiles,
        "dim": args.dim,
        "slide_mb": round(slide_mb, 2),
        "dataset_gb": round(total_gb, 2),
        "threads": args.threads,
        "rows": rows,
        "ratio_streaming_peak_vs_one_slide": stream["vs_one_slide"],
        "ratio_load_all_vs_streaming_peak": round(load_all["peak_rss_mb"] / stream["peak_rss_mb"], 2),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load": round(os.getloadavg()[0], 2),
        },
    }
    cols = [
        "mode",
        "slides",
        "epoch_s",
        "slides_per_s",
        "peak_rss_mb",
        "above_floor_mb",
        "vs_one_slide",
        "skipped",
    ]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    print(
        f"streaming peak above floor = {stream['vs_one_slide']}x one slide; "
        f"load-all / streaming peak RSS = {result['ratio_load_all_vs_streaming_peak']}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
