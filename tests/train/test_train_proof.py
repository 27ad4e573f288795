"""Proof that training works without pretrained weights: a tiny CLIP trained from scratch through
`pathgen train` on real CRC patches learns their tissue classes, then `pathgen eval` zero-shot on
held-out patches beats chance by a wide margin.

Learnable set: 3 of the 4 real patches per class, each as augmented copies (random crop, rotation,
flip) captioned with the benchmark's prompt naming its tissue class. Held out: the 4th patch of
every class (never seen in training), as its four 112-px quadrants, in the CRC folder layout.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image, ImageOps
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.evaluate.benchmarks import get_benchmark

# A CPU-sized open_clip config: a small timm CNN image tower learns colour and texture in a few
# dozen steps where a ViT from scratch needs hundreds.
MICRO = {
    "embed_dim": 64,
    "vision_cfg": {
        "timm_model_name": "resnet10t",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "image_size": 64,
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
COPIES = 16
CHANCE = 1 / 8


def build_sets(crc: Path, shards: Path, heldout: Path) -> int:
    bench = get_benchmark("crc100k")
    rng = random.Random(0)
    samples = []
    for cls_dir in sorted(p for p in crc.iterdir() if p.is_dir()):
        files = sorted(cls_dir.glob("*.png"))
        caption = bench.single_template.format(c=bench.names[cls_dir.name])
        for f in files[3:]:
            im = Image.open(f).convert("RGB")
            (heldout / cls_dir.name).mkdir(parents=True, exist_ok=True)
            for q, (x, y) in enumerate([(0, 0), (112, 0), (0, 112), (112, 112)]):
                im.crop((x, y, x + 112, y + 112)).save(heldout / cls_dir.name / f"{f.stem}_{q}.png")
        for f in files[:3]:
            im = Image.open(f).convert("RGB")
            for c in range(COPIES):
                s = rng.randint(80, 160)
                x, y = rng.randint(0, 224 - s), rng.randint(0, 224 - s)
                aug = im.crop((x, y, x + s, y + s)).resize((96, 96)).rotate(90 * rng.randint(0, 3))
                if rng.random() < 0.5:
                    aug = ImageOps.mirror(aug)
                buf = io.BytesIO()
                aug.save(buf, "JPEG", quality=90)
                samples.append((f"{cls_dir.name}_{f.stem}_{c}", buf.getvalue(), caption))
    rng.shuffle(samples)
    shards.mkdir(parents=True)
    sizes = {}
    for i in range(2):
        part = samples[i::2]
        with wds.TarWriter(str(shards / f"{i:05d}.tar")) as w:
            for key, jpg, txt in part:
                w.write({"__key__": key, "jpg": jpg, "txt": txt, "json": {"key": key}})
        sizes[f"{i:05d}.tar"] = len(part)
    (shards / "sizes.json").write_text(json.dumps(sizes))
    return len(samples)


# The sample order of open_clip_train's webdataset shuffle is seeded from the clock, so each run sees
# the data in another order: 4 epochs keep the learning clear of the bar (with 2, about 1 run in 8
# fell short: held-out accuracy 0.28 against 3x chance; with 4, 0.50-0.78 in the runs measured).
EPOCHS = 4


@pytest.mark.slow
@pytest.mark.proof
@pytest.mark.timeout(600)
def test_tiny_clip_learns_crc_classes_from_scratch(crc_patches, tmp_path):
    n = build_sets(crc_patches, tmp_path / "shards", tmp_path / "heldout")
    assert n == 8 * 3 * COPIES
    config = tmp_path / "pathgen-micro.json"
    config.write_text(json.dumps(MICRO))
    out = tmp_path / "model"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "--out",
            str(out),
            "--train-data",
            str(tmp_path / "shards"),
            "--model",
            str(config),
            "--pretrained",
            "none",
            "--epochs",
            str(EPOCHS),
            "--lr",
            "3e-3",
            "--warmup",
            "8",
            "--batch-size",
            "24",
            "--workers",
            "0",
            "--precision",
            "fp32",
            "--device",
            "cpu",
            "--log-every",
            "1",
            "--save-every",
            "0",
            "--extra=--lr-scheduler=const",
        ],
    )
    assert res.exit_code == 0, res.output

    summary = json.loads((out / "training.json").read_text())
    losses = [r["loss"] for r in summary["stages"][0]["curve"]]
    assert len(losses) == EPOCHS * n // 24
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: first 5 steps {first:.3f} -> last 5 steps {last:.3f}")
    # the first step's loss is ~ln(batch) for a random model; a learning model ends far below it
    assert last < 0.7 * losses[0] and last < first, f"loss did not fall: {losses[0]:.3f} -> {last:.3f}"
    for name in ("model.safetensors", "open_clip_config.json", "README.md", "loss.png"):
        assert (out / name).exists(), name
    assert "stage1" in (out / "README.md").read_text()

    res = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(out),
            "--benchmark",
            "crc100k",
            "--data",
            str(tmp_path / "heldout"),
            "--out",
            str(tmp_path / "eval"),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "eval" / "results.json").read_text())
    zs = result["tasks"]["zeroshot"]
    assert zs["n"] == 32
    print(f"held-out zero-shot accuracy {zs['accuracy']:.3f} (chance {CHANCE:.3f})")
    assert zs["accuracy"] >= 3 * CHANCE, f"zero-shot accuracy {zs['accuracy']:.3f} vs chance {CHANCE}"
    assert "accuracy=" in res.output and "weighted_f1=" in res.output
