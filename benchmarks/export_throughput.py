"""Export throughput: materialise released-style records from the sample slides, 1 thread vs N.

Reads every 672-px level-0 patch on a 336-px stride of the real sample slides (SVS JPEG and
JPEG 2000), encodes JPEG q95, hashes pixels and writes shards, card and gallery. The baseline is
one reading thread in the same run; the table reports patches/s and the speed-up ratio.

    python benchmarks/export_throughput.py --workers 1 2 4 --out bench-out/export_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from pathgen.sample_data import candidates, shared_data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SLIDES = (shared_data() or candidates()[0]) / "slides"


def records_for(slides: Path, stride: int, size: int = 672) -> list[dict]:
    from pathgen.slides import open_slide

    recs = []
    for name in ("CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs"):
        with open_slide(slides / name) as slide:
            w, h = slide.dimensions
        stem = name.rsplit(".", 1)[0]
        for y in range(0, h - size + 1, stride):
            for x in range(0, w - size + 1, stride):
                recs.append({"wsi_id": stem, "position": [str(x), str(y)], "caption": f"{stem} at {x},{y}."})
    return recs


def main(argv: list[str] | None = None) -> dict:
    from pathgen.export.materialise import materialise
    from pathgen.export.text import clip_token_count

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=Path, default=DEFAULT_SLIDES)
    ap.add_argument("--stride", type=int, default=336)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "export_throughput.json")
    args = ap.parse_args(argv)

    clip_token_count("warm up the tokenizer")  # import cost is not export cost
    recs = records_for(args.slides, args.stride)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "records.json"
        src.write_text(json.dumps(recs))
        for workers in sorted(set([1, *args.workers])):
            start = time.perf_counter()
            report = materialise(src, args.slides, Path(tmp) / f"w{workers}", per_shard=100, workers=workers)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "workers": workers,
                    "patches": report["done"],
                    "seconds": round(seconds, 2),
                    "patches_per_s": round(report["done"] / seconds, 1),
                }
            )
    base = rows[0]["patches_per_s"]
    for row in rows:
        row["speedup_vs_1_thread"] = round(row["patches_per_s"] / base, 2)
    print(f"{'workers':>8} {'patches':>8} {'seconds':>8} {'patch/s':>8} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['workers']:>8} {r['patches']:>8} {r['seconds']:>8} {r['patches_per_s']:>8} "
            f"{r['speedup_vs_1_thread']:>6}"
        )
    result = {
        "benchmark": "export_throughput",
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "stride": args.stride,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
