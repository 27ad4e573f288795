"""Two-stage training for real (tiny CPU model): stage 2 starts from stage 1's weights, and every
data argument is checked before anything trains."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image
from typer.testing import CliRunner

from pathgen.cli import app

MICRO = {
    "embed_dim": 32,
    "vision_cfg": {
        "timm_model_name": "resnet10t",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "image_size": 32,
    },
    "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def crc_shards(crc: Path, folder: Path, n: int = 8) -> Path:
    """One shard of real CRC patches with their class as caption, plus sizes.json."""
    folder.mkdir(parents=True)
    with wds.TarWriter(str(folder / "00000.tar")) as w:
        for i, p in enumerate(sorted(crc.rglob("*.png"))[:n]):
            buf = io.BytesIO()
            Image.open(p).convert("RGB").resize((32, 32)).save(buf, "JPEG")
            w.write({"__key__": f"s{i}", "jpg": buf.getvalue(), "txt": f"{p.parent.name} tissue"})
    (folder / "sizes.json").write_text(json.dumps({"00000.tar": n}))
    return folder


def train_args(out: Path, config: Path) -> list[str]:
    return [
        "train", "--out", str(out), "--model", str(config), "--pretrained", "none", "--epochs", "1",
        "--warmup", "0", "--batch-size", "4", "--workers", "0", "--precision", "fp32", "--device", "cpu",
        "--save-every", "0", "--extra=--lr-scheduler=const",
    ]  # fmt: skip


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.timeout(300)
def test_stage2_starts_from_stage1_weights(crc_patches, tmp_path):
    import torch

    gen = crc_shards(crc_patches, tmp_path / "gen")
    ext = crc_shards(crc_patches, tmp_path / "ext")
    config = tmp_path / "pathgen-micro.json"
    config.write_text(json.dumps(MICRO))
    out = tmp_path / "model"
    # stage 2 with a learning rate so small that no weight can move: its result must be stage 1's
    args = [*train_args(out, config), "--train-data", str(gen), "--lr", "1e-2"]
    res = CliRunner().invoke(app, [*args, "--stage2-data", str(ext), "--stage2-lr", "1e-30"])
    assert res.exit_code == 0, res.output
    stage1_file = out / "stage1" / "model.safetensors"
    assert f"stage2: starts from stage1's weights ({stage1_file})" in " ".join(res.output.split())
    log = (out / "logs" / "stage2" / "out.log").read_text()
    assert f"Loading full pretrained weights from: {stage1_file}" in log
    assert "initialized randomly" not in log

    stage1, stage2 = weights(stage1_file), weights(out / "stage2" / "model.safetensors")
    assert stage1.keys() == stage2.keys()
    # BatchNorm running statistics follow the data whatever the learning rate; weights must not move
    learned = [k for k in stage1 if "running_" not in k and "num_batches_tracked" not in k]
    moved = [k for k in learned if not torch.allclose(stage1[k], stage2[k], rtol=0, atol=1e-7)]
    assert not moved, moved[:5]
    # and stage 1 itself did move away from its random start (the comparison above means something)
    res = CliRunner().invoke(app, [*train_args(tmp_path / "s0", config), "--train-data", str(gen),
                                   "--lr", "1e-30"])  # fmt: skip
    assert res.exit_code == 0, res.output
    random_start = weights(tmp_path / "s0" / "model.safetensors")
    assert any(not torch.allclose(random_start[k], stage1[k], atol=1e-4) for k in learned)
