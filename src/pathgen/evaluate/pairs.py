"""Image–caption pairs from webdataset shards (a pathgen export, ARCH, Quilt ...) for retrieval."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pathgen.evaluate.data import IMAGE_EXTS


@dataclass(frozen=True)
class Pair:
    key: str
    image: bytes
    caption: str

    def open(self) -> Any:
        from PIL import Image

        with Image.open(io.BytesIO(self.image)) as im:
            return im.convert("RGB")


def expand_shards(spec: str | Path) -> list[str]:
    """A directory (all ``*.tar`` in it), a brace pattern ``DIR/{00000..00003}.tar``, or one tar."""
    import braceexpand

    path = Path(str(spec)).expanduser()
    if path.is_dir():
        urls = sorted(str(p) for p in path.glob("*.tar"))
    else:
        urls = [u for u in braceexpand.braceexpand(str(spec)) if Path(u).exists()]
    if not urls:
        raise FileNotFoundError(f"no webdataset shards (*.tar) found for {spec}")
    return urls


def load_pairs(spec: str | Path, limit: int | None = None) -> list[Pair]:
    """Read ``KEY.jpg|png`` + ``KEY.txt`` pairs in shard order with webdataset (no shuffling)."""
    import webdataset as wds

    out: list[Pair] = []
    dataset = wds.WebDataset(expand_shards(spec), shardshuffle=False)
    for sample in dataset:
        image = next((sample[k] for k in (e.lstrip(".") for e in IMAGE_EXTS) if k in sample), None)
        text = sample.get("txt")
        if image is None or text is None:
            continue
        caption = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        out.append(Pair(key=sample["__key__"], image=image, caption=caption.strip()))
        if limit and len(out) >= limit:
            break
    return out
