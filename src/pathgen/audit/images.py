"""The image of each pair, as the dataset holds it: from the export's shards, else from the slide.

Why the shards first: the audit and the review should look at the bytes people train on (resized
and JPEG-encoded by export). A pair that the current export left out (dropped by a flag, rejected
in review) is read from its slide at the export's image size, through the one patch reader
(:func:`pathgen.slides.read_tile`). Shard members are located once by their tar offsets and then
read with a plain seek, so random access (the review app) costs one small read and is thread-safe.
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pathgen.rundir import RunDir


class PairImages:
    """JPEG bytes of a pair by tile id (``None`` when neither the shards nor the slide have it)."""

    def __init__(self, run: RunDir, image_size: int = 672, quality: int = 95):
        self.run = run
        self.image_size = image_size
        self.quality = quality
        self._lock = threading.Lock()
        self._where: dict[str, tuple[str, str]] | None = None  # tile_id -> (shard, key)
        self._offsets: dict[str, dict[str, tuple[int, int]]] = {}  # shard -> key -> (offset, size)

    def _index(self) -> dict[str, tuple[str, str]]:
        with self._lock:
            if self._where is None:
                where: dict[str, tuple[str, str]] = {}
                index = self.run.export / "index.parquet"
                if index.exists():
                    import pyarrow.parquet as pq

                    for r in pq.read_table(index, columns=["tile_id", "shard", "key"]).to_pylist():
                        where[str(r["tile_id"])] = (str(r["shard"]), str(r["key"]))
                self._where = where
            return self._where

    def _members(self, shard: str) -> dict[str, tuple[int, int]]:
        with self._lock:
            if shard not in self._offsets:
                found: dict[str, tuple[int, int]] = {}
                path = self.run.export / "shards" / Path(shard).name
                if path.is_file():
                    with tarfile.open(path, "r:") as tar:
                        for m in tar:
                            if m.isfile() and m.name.endswith(".jpg"):
                                found[m.name[: -len(".jpg")]] = (m.offset_data, m.size)
                self._offsets[shard] = found
            return self._offsets[shard]

    def from_shard(self, tile_id: str) -> bytes | None:
        hit = self._index().get(tile_id)
        if hit is None:
            return None
        shard, key = hit
        member = self._members(shard).get(key)
        if member is None:
            return None
        offset, size = member
        with open(self.run.export / "shards" / Path(shard).name, "rb") as fh:
            fh.seek(offset)
            return fh.read(size)

    def from_slide(self, record: Mapping[str, Any], slide: Mapping[str, Any] | None) -> bytes | None:
        if not slide or not slide.get("path"):
            return None
        from pathgen.export.shards import encode_jpeg
        from pathgen.slides import read_tile

        image = read_tile(
            str(slide["path"]), int(record["x"]), int(record["y"]), int(record["size"]),
            self.image_size, reader=slide.get("reader") or "auto",
        )  # fmt: skip
        return encode_jpeg(image, self.quality)

    def get(self, record: Mapping[str, Any], slide: Mapping[str, Any] | None) -> tuple[bytes | None, str]:
        """``(jpeg, source)`` with source ``shard`` or ``slide``; raises when the slide read fails."""
        data = self.from_shard(str(record["tile_id"]))
        if data is not None:
            return data, "shard"
        return self.from_slide(record, slide), "slide"


def export_image_settings(run: RunDir) -> tuple[int, int]:
    """``(image_size, jpeg_quality)`` of the run's export settings (the config's, else defaults)."""
    import contextlib

    from pathgen.config import ExportConfig, RunConfig

    cfg = ExportConfig()
    if run.config.exists():
        with contextlib.suppress(ValueError, FileNotFoundError):
            cfg = RunConfig.from_yaml(run.config).export
    return cfg.image_size, cfg.jpeg_quality


def decode(jpeg: bytes) -> Any:
    """RGB PIL image of JPEG bytes."""
    from PIL import Image

    return Image.open(io.BytesIO(jpeg)).convert("RGB")
