"""Builders for the assistant tests: a tiny CLIP model folder and labelled CRC sets (real pixels)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageOps

# A CPU-sized open_clip ViT: 64 px, 16 px patches (16 image tokens), 2 blocks of width 64.
MICRO_VIT = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def clip_folder(root: Path, seed: int = 0, identity_blocks: bool = False) -> Path:
    """A `pathgen train`-style model folder (model.safetensors + open_clip_config.json), random ViT.

    ``identity_blocks``: the image tower's residual branches start at zero (attention and MLP output
    projections zeroed, the "zero-init residual" initialisation), so its hidden states are its
    patch embeddings and carry the pixels' colour and texture; with random branches the blocks'
    outputs drown them (features vary ~5% between images), which no short CPU run overcomes. A
    trained CLIP tower (`pathgen train`) is what users bring; the proof needs features, not weights.
    """
    import open_clip
    import torch

    from pathgen.models.encoders import quiet_no_weights_warning
    from pathgen.train.export import export_model

    root.mkdir(parents=True, exist_ok=True)
    cfg_file = root / "micro-vit.json"
    cfg_file.write_text(json.dumps(MICRO_VIT))
    from pathgen.train.launch import register_extra_configs

    register_extra_configs([str(cfg_file)])
    torch.manual_seed(seed)
    with quiet_no_weights_warning():
        model = open_clip.create_model("micro-vit", pretrained=None)
    if identity_blocks:
        with torch.no_grad():
            for block in model.visual.transformer.resblocks:
                for layer in (block.attn.out_proj, block.mlp.c_proj):
                    layer.weight.zero_()
                    layer.bias.zero_()
    torch.save({"state_dict": model.state_dict()}, root / "ckpt.pt")
    export_model("micro-vit", root / "ckpt.pt", root / "clip", config_files=[str(cfg_file)])
    return root / "clip"


def crc_sets(crc: Path, train: Path, heldout: Path, copies: int, size: int = 64) -> None:
    """Train: ``copies`` augmented crops of the first 3 patches of each class; held out: the four
    quadrants of the 4th patch (never seen in training). ImageFolder layout, one folder per class."""
    rng = random.Random(0)
    for cls_dir in sorted(p for p in crc.iterdir() if p.is_dir()):
        files = sorted(cls_dir.glob("*.png"))
        (train / cls_dir.name).mkdir(parents=True, exist_ok=True)
        (heldout / cls_dir.name).mkdir(parents=True, exist_ok=True)
        for f in files[3:4]:
            im = Image.open(f).convert("RGB")
            for q, (x, y) in enumerate([(0, 0), (112, 0), (0, 112), (112, 112)]):
                im.crop((x, y, x + 112, y + 112)).resize((size, size)).save(
                    heldout / cls_dir.name / f"{f.stem}_{q}.png"
                )
        for f in files[:3]:
            im = Image.open(f).convert("RGB")
            for c in range(copies):
                s = rng.randint(80, 160)
                x, y = rng.randint(0, 224 - s), rng.randint(0, 224 - s)
                aug = im.crop((x, y, x + s, y + s)).resize((size, size)).rotate(90 * rng.randint(0, 3))
                if rng.random() < 0.5:
                    aug = ImageOps.mirror(aug)
                aug.save(train / cls_dir.name / f"{f.stem}_{c}.png")
