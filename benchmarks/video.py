"""`pathgen video` frame throughput: frames decoded + classified per second vs decoding alone.

A lecture-like video is generated from the real CRC patches (shared data): histology views of
8-20 s interleaved with title slides, desktop screens and flat colours, H.264 at --fps (default
10 minutes of 720p at 25 fps; ``--minutes 1`` for a quick run). It is generated once into
``--workdir`` and reused. Three passes over the same file, in the same run:

- ``decode``: the baseline. PyAV decodes every frame (FFmpeg frame threads) and hands out the
  sampled ones (``--sample-fps``) as full-resolution RGB plus the small analysis copy: exactly the
  frames pathgen's frame pipeline starts from.
- ``decode+classify``: the same, plus the default weight-free histology classifier on every sampled
  frame (what a classifier-only curation would cost).
- ``pipeline``: pathgen's frame pipeline as ``pathgen video`` runs it (shot cuts, SSIM stability,
  classifier on each stable clip's median, slide-area crop, dHash dedup, JPEG of kept frames).

Reported per pass: wall seconds, sampled frames per second, video seconds per wall second (x real
time), and the ratio of its throughput to ``decode`` (1.0 = classification is free).

    python benchmarks/video.py              # 10 min 720p
    python benchmarks/video.py --minutes 1  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def make_video(path: Path, minutes: float, fps: int, size: tuple[int, int]) -> dict[str, Any]:
    import numpy as np

    from pathgen.sample_data import candidates, shared_data
    from pathgen.video.synth import (
        Scene,
        desktop_screen,
        histology_screen,
        solid_screen,
        text_screen,
        write_video,
    )

    crc = (shared_data() or candidates()[0]) / "patches" / "crc-val-he-7k"
    classes = sorted(p.name for p in crc.iterdir() if p.is_dir())
    rng = np.random.default_rng(0)
    scenes, total, i = [], 0.0, 0
    while total < minutes * 60:
        kind = i % 4
        if kind in (0, 2):
            cls = classes[int(rng.integers(len(classes)))]
            scenes.append(
                Scene(
                    histology_screen(sorted((crc / cls).glob("*.png")), size, i),
                    float(rng.uniform(8, 20)),
                    "",
                    True,
                )
            )
        elif kind == 1:
            scenes.append(
                Scene(
                    text_screen([f"Slide {i}", "Key features", "- growth pattern"], size),
                    float(rng.uniform(5, 12)),
                    "",
                    False,
                )
            )
        else:
            other = desktop_screen(size, i) if i % 8 == 3 else solid_screen(size, (30, 30, 90))
            scenes.append(Scene(other, float(rng.uniform(3, 8)), "", False))
        total += scenes[-1].seconds
        i += 1
    t0 = time.perf_counter()
    write_video(path, scenes, fps=fps)
    return {
        "scenes": len(scenes),
        "histology_scenes": sum(s.histology for s in scenes),
        "seconds": round(total, 1),
        "encode_s": round(time.perf_counter() - t0, 1),
    }


def run_pass(kind: str, path: Path, cfg: Any, workdir: Path) -> dict[str, Any]:
    from pathgen.video.analyse import VideoJob, _frames
    from pathgen.video.classify import ColourClassifier
    from pathgen.video.decode import iter_frames

    clf = ColourClassifier(cfg.colour_min_fraction)
    t0, c0 = time.perf_counter(), time.process_time()
    sampled, histology, kept, last_t = 0, 0, 0, 0.0
    if kind == "pipeline":
        job = VideoJob(str(path), "bench", str(workdir / "work"), None, cfg.model_dump(mode="json"))
        res = _frames(job, workdir / "work")
        sampled, last_t = res["sampled"], res["last_t"]
        histology = sum(f["reason"] != "not_histology" for f in res["frames"])
        kept = sum(f["kept"] for f in res["frames"])
    else:
        for frame in iter_frames(path, cfg.sample_fps, cfg.analysis_side, max_side=2 * cfg.max_side):
            sampled += 1
            last_t = frame.t
            if kind == "decode+classify":
                histology += int(clf.scores([frame.rgb])[0] >= cfg.histology_threshold)
    wall = time.perf_counter() - t0
    return {
        "pass": kind,
        "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "sampled_frames": sampled,
        "frames_per_s": round(sampled / wall, 1),
        "x_realtime": round((last_t + 1 / cfg.sample_fps) / wall, 1),
        "histology_frames_or_clips": histology,
        "kept_frames": kept,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--sample-fps", type=float, default=2.0)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pathgen-bench-video")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "video.json")
    args = ap.parse_args()

    from pathgen.config import VideoConfig

    cfg = VideoConfig(sample_fps=args.sample_fps)
    args.workdir.mkdir(parents=True, exist_ok=True)
    video = args.workdir / f"lecture_{args.minutes:g}min_{args.height}p_{args.fps}fps.mp4"
    meta_path = video.with_suffix(".json")
    if not (video.is_file() and meta_path.is_file()):
        meta = make_video(video, args.minutes, args.fps, (args.width, args.height))
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    rows = [run_pass(kind, video, cfg, args.workdir) for kind in ("decode", "decode+classify", "pipeline")]
    base = rows[0]["frames_per_s"]
    for row in rows:
        row["ratio_vs_decode"] = round(row["frames_per_s"] / base, 3)
        row["decoded_frames_per_s"] = round(row["x_realtime"] * args.fps)  # every frame is decoded
    print(
        f"video: {video.name} ({meta['seconds']} s, {meta['scenes']} scenes, "
        f"{meta['histology_scenes']} histology), "
        f"sampled at {args.sample_fps:g} fps; cpus={os.cpu_count()}"
    )
    cols = [
        "pass",
        "wall_s",
        "cpu_s",
        "sampled_frames",
        "frames_per_s",
        "x_realtime",
        "decoded_frames_per_s",
        "ratio_vs_decode",
        "histology_frames_or_clips",
        "kept_frames",
    ]
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row[c]) for c in cols))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "video": {
                    **meta,
                    "file": str(video),
                    "width": args.width,
                    "height": args.height,
                    "fps": args.fps,
                    "sample_fps": args.sample_fps,
                },
                "passes": rows,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
