"""Attention heatmaps: where on the slide the model looked, and the tiles it looked at most.

A PNG per slide: a title line, the slide thumbnail with each tile tinted by its attention (ranks,
not raw weights: softmax attention over thousands of tiles is tiny everywhere but a few, and a
rank scale shows the ordering a pathologist checks), and a strip of the ``top_k`` tiles with their
rank. The slide is opened from the path its feature file records (``slide_path``); when it cannot
be opened, the heatmap is drawn on a blank canvas from the coordinates alone and the strip is left
out (the title says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pathgen.mil.h5 import read_slide
from pathgen.rundir import atomic_path

THUMB_SIDE = 1024
STRIP_TILE = 128


def rank_scale(attention: np.ndarray) -> np.ndarray:
    """Attention as ranks in [0, 1] (1 = the most attended tile)."""
    a = np.asarray(attention, np.float64)
    if len(a) < 2:
        return np.ones_like(a)
    order = np.argsort(np.argsort(a, kind="stable"), kind="stable")
    return order / (len(a) - 1)


def write_heatmap(h5: Path, attention: np.ndarray, png: Path, title: str, top_k: int = 8) -> Path:
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    feats = read_slide(h5)
    coords, attrs = feats.coords, feats.attrs
    attention = np.asarray(attention)
    if len(attention) != len(coords):
        raise ValueError(f"{len(attention)} attention weights for {len(coords)} tiles")
    size = int(attrs.get("patch_size") or 256)
    width = int(attrs.get("level0_width") or 0) or int(coords[:, 0].max() + size)
    height = int(attrs.get("level0_height") or 0) or int(coords[:, 1].max() + size)
    ds = max(1.0, max(width, height) / THUMB_SIDE)
    slide = None
    note = ""
    path = str(attrs.get("slide_path") or "")
    try:
        if not path or not Path(path).exists():
            raise FileNotFoundError(f"slide not found: {path or '(no slide_path recorded)'}")
        from pathgen.slides import open_slide

        slide = open_slide(path, reader=str(attrs.get("reader") or "auto")).open()
        thumb = slide.thumbnail_array(ds)
    except Exception as exc:  # no slide: the map still shows where attention went
        thumb = np.full((max(1, round(height / ds)), max(1, round(width / ds)), 3), 255, np.uint8)
        note = f" [no thumbnail: {type(exc).__name__}]"
        slide = None
    overlay = thumb.astype(np.float32).copy()
    colours = colormaps["jet"](rank_scale(attention))[:, :3] * 255
    side = max(1, round(size / ds))
    for (x, y), c in zip(coords, colours, strict=True):
        x0, y0 = int(x / ds), int(y / ds)
        region = overlay[y0 : y0 + side, x0 : x0 + side]
        region[:] = 0.5 * region + 0.5 * c
    top = np.argsort(-attention, kind="stable")[:top_k]
    strip = []
    if slide is not None:
        from pathgen.slides import read_tile

        for i in top:
            strip.append(read_tile(slide, int(coords[i, 0]), int(coords[i, 1]), size, STRIP_TILE))
        slide.close()
    heat = Image.fromarray(np.clip(overlay, 0, 255).astype(np.uint8))
    draw_h = ImageDraw.Draw(heat)
    for r, i in enumerate(top[: min(3, len(top))]):  # outline the top 3 on the map
        x0, y0 = int(coords[i, 0] / ds), int(coords[i, 1] / ds)
        draw_h.rectangle([x0, y0, x0 + side - 1, y0 + side - 1], outline=(255, 255, 255), width=2)
        draw_h.text((x0 + 2, y0 + 2), str(r + 1), fill=(255, 255, 255))
    title_h, label_h = 22, 16
    strip_h = (STRIP_TILE + label_h) if strip else 0
    w = max(heat.width, len(strip) * STRIP_TILE, 320)
    canvas = Image.new("RGB", (w, title_h + heat.height + strip_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), (title + note)[:160], fill=(0, 0, 0))
    canvas.paste(heat, (0, title_h))
    for r, (tile, i) in enumerate(zip(strip, top, strict=False)):
        x = r * STRIP_TILE
        canvas.paste(tile, (x, title_h + heat.height + label_h))
        draw.text((x + 2, title_h + heat.height + 2), f"#{r + 1} a={attention[i]:.3f}", fill=(0, 0, 0))
    with atomic_path(png) as tmp:
        canvas.save(tmp, format="PNG")
    return png
