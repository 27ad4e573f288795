"""The typed record a tile travels in between stages: one base, extended by each stage.

Why one record: a tile used to travel as ``TileTask``, ``TileContext`` and plain dicts, each
copying the fields it thought it needed. ``TileTask`` dropped the slide's reader, so the caption
stage read a tile with ``auto`` while export read it with the reader slides.parquet recorded.
Here a tile always carries where and how its pixels are read (slide path, reader, mpp), and a
stage adds only what it knows:

- :class:`TileRecord` — a row of tiles.parquet with its slide's reading facts (slides.parquet);
- :class:`SelectedTile` — plus why the select stage kept it (reason, score, cluster, prompt);
- :class:`CaptionTile` — plus the additional text the agents are given (project, report findings).

Records are frozen: a stage that learns more makes a new record (``dataclasses.replace`` or a
subclass), so one stage cannot change what another one reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R", bound="TileRecord")

# slides.parquet column -> record field, for the slide facts every tile carries
_SLIDE_COLUMNS = {"path": "slide_path", "reader": "reader", "mpp": "mpp", "project": "project"}


@dataclass(frozen=True, kw_only=True)
class TileRecord:
    """One tile: ``size`` level-0 pixels square at level-0 ``(x, y)`` of a slide, and how to read it."""

    tile_id: str
    slide_id: str
    x: int
    y: int
    size: int
    level: int | None = None  # the pyramid level the tile stage read it at (tiles.parquet)
    slide_path: str | None = None
    reader: str = "auto"  # the backend that opened the slide when it was tiled (slides.parquet)
    mpp: float | None = None

    @classmethod
    def from_rows(
        cls: type[R], tile: Mapping[str, Any], slide: Mapping[str, Any] | None = None, **extra: Any
    ) -> R:
        """A record from a parquet row of the tile and, when known, its slides.parquet row.

        Columns that are not fields of ``cls`` are ignored, so one reader serves every stage's
        table; ``extra`` sets fields the rows do not hold. Missing required columns raise
        ``ValueError`` naming them.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: v for k, v in tile.items() if k in names}
        for column, name in _SLIDE_COLUMNS.items():
            if slide is not None and name in names and slide.get(column) is not None:
                values[name] = slide[column]
        values.update(extra)
        missing = {"tile_id", "slide_id", "x", "y", "size"} - set(values)
        if missing:
            raise ValueError(f"a tile row lacks {sorted(missing)}")
        for name in ("tile_id", "slide_id"):
            values[name] = str(values[name])
        for name in ("x", "y", "size"):
            values[name] = int(values[name])
        if values.get("level") is not None:
            values["level"] = int(values["level"])
        values["reader"] = values.get("reader") or "auto"
        for name in ("slide_path", "project", "prompt", "reason"):
            if name in values:
                values[name] = values[name] or None  # an empty string means "not given"
        return cls(**values)

    def read(self, out_size: int | None = None) -> Any:
        """The tile as an RGB PIL image of ``out_size`` px, read with the slide's recorded reader."""
        from pathgen.slides import read_tile

        if not self.slide_path:
            raise ValueError(f"slide {self.slide_id!r} has no path in slides.parquet")
        return read_tile(self.slide_path, self.x, self.y, self.size, out_size=out_size, reader=self.reader)

    def as_row(self) -> dict[str, Any]:
        """The record as a plain dict (a parquet row, a JSON object)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class SelectedTile(TileRecord):
    """A tile the select stage kept (a row of selected.parquet)."""

    reason: str | None = None  # attribute | finding | cluster
    score: float | None = None
    cluster: int | None = None
    prompt: str | None = None  # the prompt that selected it, if one did


@dataclass(frozen=True, kw_only=True)
class CaptionTile(SelectedTile):
    """A selected tile with the additional text the caption agents are given."""

    project: str | None = None  # organ / TCGA project of the slide
    findings: tuple[str, ...] = ()  # findings of the slide's report

    @property
    def selection_prompt(self) -> str | None:
        """The prompt that selected the tile (the name the agents' prompt templates use)."""
        return self.prompt
