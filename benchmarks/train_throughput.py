"""Training throughput of `pathgen train` next to open_clip_train run directly with the same settings.

Builds webdataset shards from real CRC patches (repeated to the requested size), then runs the
same training twice: through `pathgen train` and through `open_clip_train.main` itself, and
reports samples/s from each run's own log (steady state: the first logged steps are skipped).

CPU smoke run (default):   python benchmarks/train_throughput.py
GPU (the issue's numbers): python benchmarks/train_throughput.py --model ViT-B-16 --batch-size 256 \
                             --precision amp_bf16 --device cuda --samples 25600 --workers 8
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pathgen.sample_data import candidates, shared_data

ROOT = Path(__file__).resolve().parents[1]
CRC = (shared_data() or candidates()[0]) / "patches" / "crc-val-he-7k"


def build_shards(folder: Path, n: int, per_shard: int, size: int) -> None:
    import webdataset as wds
    from PIL import Image

    patches = sorted(CRC.rglob("*.png"))
    if not patches:
        raise SystemExit(f"no CRC patches under {CRC}")
    images = []
    for p in patches:
        buf = io.BytesIO()
        Image.open(p).convert("RGB").resize((size, size)).save(buf, "JPEG", quality=90)
        images.append((p.parent.name, buf.getvalue()))
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for s in range(0, n, per_shard):
        name = f"{s // per_shard:05d}.tar"
        with wds.TarWriter(str(folder / name)) as w:
            for i in range(s, min(s + per_shard, n)):
                cls, jpg = images[i % len(images)]
                w.write({"__key__": f"k{i:08d}", "jpg": jpg, "txt": f"an H&E patch of {cls}"})
        sizes[name] = min(per_shard, n - s)
    (folder / "sizes.json").write_text(json.dumps(sizes))


def steady_speed(log: Path, skip: int) -> float:
    from pathgen.train.export import parse_log

    speeds = [r["samples_per_s"] for r in parse_log(log) if r["samples_per_s"]]
    speeds = speeds[skip:] or speeds
    return sum(speeds) / len(speeds) if speeds else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pathgen-tiny")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=640, help="samples per epoch (one epoch is run)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each, in alternating order")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "train_throughput.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pathgen-train-bench-"))
    shards = work / "shards"
    per_shard = max(args.samples // max(args.workers, 1) // 4, 64)
    build_shards(shards, args.samples, per_shard, args.image_size)
    from pathgen.train.argv import resolve_data, stage_argv
    from pathgen.train.config import TrainConfig

    common = dict(
        model=args.model,
        pretrained=None,
        batch_size=args.batch_size,
        workers=args.workers,
        precision=args.precision,
        device=args.device,
        log_every_n_steps=1,
        save_frequency=0,
    )
    cfg = TrainConfig(
        out=work / "direct",
        stage1={"name": "direct", "data": str(shards), "epochs": 1, "warmup": 10},
        **common,
    )
    argv = stage_argv(cfg, cfg.stage1, resolve_data(str(shards)), work / "direct" / "logs", None)
    code = (
        "import sys, open_clip; from pathgen.models.encoders import MODEL_CONFIGS; "
        "open_clip.add_model_config(MODEL_CONFIGS); from open_clip_train.main import main; main(sys.argv[1:])"
    )
    pathgen_cli = str(Path(sys.executable).parent / "pathgen")
    runs: dict[str, list[dict]] = {"pathgen_train": [], "open_clip_train": []}
    for rep in range(args.repeats):
        # alternate the order so that load from other processes does not favour one runner
        order = ("pathgen_train", "open_clip_train") if rep % 2 == 0 else ("open_clip_train", "pathgen_train")
        for runner in order:
            name = f"{runner}-{rep}"
            if runner == "pathgen_train":
                cmd = [
                    pathgen_cli,
                    "train",
                    "--out",
                    str(work / name),
                    "--train-data",
                    str(shards),
                    "--model",
                    args.model,
                    "--pretrained",
                    "none",
                    "--epochs",
                    "1",
                    "--warmup",
                    "10",
                    "--batch-size",
                    str(args.batch_size),
                    "--workers",
                    str(args.workers),
                    "--precision",
                    args.precision,
                    "--device",
                    args.device,
                    "--log-every",
                    "1",
                    "--save-every",
                    "0",
                ]
                log = work / name / "logs" / "stage1" / "out.log"
            else:
                run_argv = list(argv)
                run_argv[run_argv.index("--name") + 1] = name
                cmd = [sys.executable, "-c", code, *run_argv]
                log = work / "direct" / "logs" / name / "out.log"
            t0 = time.time()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs[runner].append({"wall_s": round(time.time() - t0, 1), "samples_per_s": steady_speed(log, 3)})
    results: dict = {"runs": runs}
    for runner, rs in runs.items():
        results[runner] = {
            "wall_s": round(sum(r["wall_s"] for r in rs) / len(rs), 1),
            "samples_per_s": sum(r["samples_per_s"] for r in rs) / len(rs),
        }
    base = results["open_clip_train"]["samples_per_s"] or 1.0
    results["ratio_pathgen_over_direct"] = round(results["pathgen_train"]["samples_per_s"] / base, 3)
    results["settings"] = vars(args) | {"out": str(args.out)}
    print(f"{'runner':<16} {'samples/s':>10} {'wall s':>8}")
    for k in ("pathgen_train", "open_clip_train"):
        print(f"{k:<16} {results[k]['samples_per_s']:>10.1f} {results[k]['wall_s']:>8.1f}")
    print(f"ratio pathgen/direct: {results['ratio_pathgen_over_direct']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
