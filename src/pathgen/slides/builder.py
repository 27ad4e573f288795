"""Build big pyramidal whole-slide TIFFs from real H&E images, for tests and benchmarks.

No large real slide can be downloaded here, so we assemble one: the slide is a grid of 1024-px
"cells", each either glass (near-white background, so a tissue mask has something to reject) or a
mosaic of real H&E images (from ``shared/data/patches``). Tissue cells follow smooth random blobs.
Because a cell's content depends only on its index, any tile of any pyramid level can be rendered
on its own: the TIFF is streamed tile by tile (tifffile takes an iterator of encoded tiles), so a
100,000 x 100,000 px slide never sits in memory, and identical tiles are JPEG-encoded once.

The output is a tiled, JPEG (YCbCr 4:2:0) TIFF with one page per level (2x downsampling until the
level fits in ~1k px) and the resolution tags in centimetres, which OpenSlide opens as
``generic-tiff`` with ``openslide.mpp-x`` set.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pathgen.sample_data import shared_path

CELL = 1024  # level-0 px per cell; a power of two so every level's cells stay whole pixels
BACKGROUND = (242, 240, 243)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
DEFAULT_SOURCES = shared_path("patches") or Path("shared/data/patches")


def find_sources(root: str | Path = DEFAULT_SOURCES) -> list[Path]:
    """Image files under ``root`` (recursive, sorted)."""
    root = Path(root)
    if root.is_file():
        return [root]
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no source images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return found


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _cell_variants(sources: list[Path], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` tissue cells (n, CELL, CELL, 3): a big image crop, or a 4x4 mosaic of small ones."""
    import cv2

    images = [_load(p) for p in sources]
    big = [im for im in images if min(im.shape[:2]) >= 600]
    out = np.empty((n, CELL, CELL, 3), dtype=np.uint8)
    piece = CELL // 4
    for i in range(n):
        if big and i % 3 == 0:
            im = big[rng.integers(len(big))]
            side = min(im.shape[:2])
            crop = im[:side, :side]
            out[i] = cv2.resize(crop, (CELL, CELL), interpolation=cv2.INTER_CUBIC)
        else:
            for r in range(4):
                for c in range(4):
                    im = images[rng.integers(len(images))]
                    side = min(im.shape[:2])
                    y0 = rng.integers(im.shape[0] - side + 1)
                    x0 = rng.integers(im.shape[1] - side + 1)
                    sq = cv2.resize(
                        im[y0 : y0 + side, x0 : x0 + side], (piece, piece), interpolation=cv2.INTER_AREA
                    )
                    sq = np.rot90(sq, rng.integers(4))
                    out[i, r * piece : (r + 1) * piece, c * piece : (c + 1) * piece] = sq
        if rng.integers(2):
            out[i] = out[i, :, ::-1]
    return out


def _cell_map(ncx: int, ncy: int, n_variants: int, rng: np.random.Generator, tissue: float) -> np.ndarray:
    """Cell index per cell (``n_variants`` = background), tissue in smooth blobs, a glass margin."""
    import cv2

    coarse = rng.random((max(2, ncy // 6 + 2), max(2, ncx // 6 + 2))).astype(np.float32)
    field = cv2.resize(coarse, (ncx, ncy), interpolation=cv2.INTER_CUBIC)
    if min(ncx, ncy) >= 4:
        yy, xx = np.mgrid[0:ncy, 0:ncx]
        edge = np.minimum.reduce([xx, yy, ncx - 1 - xx, ncy - 1 - yy])
        field[edge < 1] = -1.0  # glass all around, like a real slide
    threshold = np.quantile(field, 1.0 - tissue)
    cells = rng.integers(0, n_variants, size=(ncy, ncx))
    return np.where(field > threshold, cells, n_variants).astype(np.int32)


def _level_variants(variants: np.ndarray, k: int) -> np.ndarray:
    """Cell images at level ``k`` (cell side CELL >> k), plus the background cell last."""
    import cv2

    c = CELL >> k
    scaled = (
        variants
        if k == 0
        else np.stack([cv2.resize(v, (c, c), interpolation=cv2.INTER_AREA) for v in variants])
    )
    bg = np.empty((1, c, c, 3), dtype=np.uint8)
    bg[:] = BACKGROUND
    return np.concatenate([scaled, bg])


def _tiles(
    cellmap: np.ndarray, cells: np.ndarray, k: int, dims: tuple[int, int], tile: int, quality: int
) -> Iterator[bytes]:
    """Encoded JPEG tiles of level ``k`` in row-major order; repeated content is encoded once."""
    import imagecodecs

    c = CELL >> k
    bg_index = cells.shape[0] - 1
    width, height = dims
    cache: dict[bytes, bytes] = {}

    def encode(key: bytes, arr: np.ndarray) -> bytes:
        got = cache.get(key)
        if got is None:
            got = imagecodecs.jpeg8_encode(
                np.ascontiguousarray(arr),
                level=quality,
                colorspace="RGB",
                outcolorspace="YCBCR",
                subsampling=(2, 2),
            )
            if len(cache) < 4096:
                cache[key] = got
        return got

    ncy, ncx = cellmap.shape
    for ty in range(-(-height // tile)):
        for tx in range(-(-width // tile)):
            if c >= tile:
                cy, oy = divmod(ty * tile, c)
                cx, ox = divmod(tx * tile, c)
                idx = int(cellmap[cy, cx]) if cy < ncy and cx < ncx else bg_index
                yield encode(f"{idx}:{oy}:{ox}".encode(), cells[idx, oy : oy + tile, ox : ox + tile])
            else:
                n = tile // c
                block = np.full((n, n), bg_index, dtype=np.int32)
                sub = cellmap[ty * n : ty * n + n, tx * n : tx * n + n]
                block[: sub.shape[0], : sub.shape[1]] = sub
                arr = cells[block].transpose(0, 2, 1, 3, 4).reshape(tile, tile, 3)
                yield encode(b"b" + block.tobytes(), arr)


def build_pyramid_tiff(
    path: str | Path,
    width: int,
    height: int | None = None,
    sources: list[str | Path] | None = None,
    mpp: float = 0.5,
    tile: int = 512,
    levels: int | None = None,
    quality: int = 90,
    seed: int = 0,
    tissue: float = 0.55,
    variants: int = 24,
) -> Path:
    """Write a pyramidal tiled JPEG TIFF of ``width`` x ``height`` level-0 px; returns ``path``.

    ``levels`` defaults to halving until the level fits in 1024 px. ``tissue`` is the fraction of
    cells covered by tissue. The same arguments always give the same pixels.
    """
    import tifffile

    height = int(height or width)
    width = int(width)
    if width < 1 or height < 1:
        raise ValueError(f"slide size must be positive, got {width} x {height}")
    if tile not in (128, 256, 512, 1024):
        raise ValueError(f"tile must be 128, 256, 512 or 1024, got {tile}")
    max_levels = 11  # CELL >> 10 == 1 px cells
    if levels is None:
        levels = 1
        while max(width, height) / 2**levels > 1024 and levels < max_levels:
            levels += 1
        levels = max(levels, 2) if max(width, height) > 2 * tile else levels
    if not 1 <= levels <= max_levels:
        raise ValueError(f"levels must be 1..{max_levels}, got {levels}")
    rng = np.random.default_rng(seed)
    srcs = [Path(s) for s in sources] if sources else find_sources()
    base = _cell_variants(srcs, variants, rng)
    cellmap = _cell_map(-(-width // CELL), -(-height // CELL), variants, rng, tissue)
    res = 10000.0 / mpp  # pixels per centimetre
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with tifffile.TiffWriter(tmp, bigtiff=width * height * 3 > 2**31) as tif:
        for k in range(levels):
            dims = (max(1, -(-width // 2**k)), max(1, -(-height // 2**k)))
            cells = _level_variants(base, k)
            tif.write(
                _tiles(cellmap, cells, k, dims, tile, quality),
                shape=(dims[1], dims[0], 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression="jpeg",
                resolution=(res / 2**k, res / 2**k),
                resolutionunit="CENTIMETER",
                subfiletype=0 if k == 0 else 1,
                description=f"pathgen synthetic slide from real H&E tiles; level {k}; mpp {mpp * 2**k}",
                metadata=None,
            )
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pathgen.slides.builder", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out", type=Path, help="output .tif path")
    parser.add_argument("--size", type=int, default=20000, help="width (and height unless --height) in px")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--mpp", type=float, default=0.5)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--levels", type=int, default=None)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES, help="folder of H&E images")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = build_pyramid_tiff(
        args.out, args.size, args.height, find_sources(args.sources), args.mpp, args.tile, args.levels,
        args.quality, args.seed,
    )  # fmt: skip
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
