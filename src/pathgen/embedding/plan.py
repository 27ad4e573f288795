"""The embed stage's item, a chunk (a batch of tiles of one slide), and reassembly per slide.

Why the chunk is the item: a forward pass wants ``batch_size`` tiles and a slide has thousands, so
the unit of work is one batch, cut inside one slide. Every runner (one device, several devices,
Ray actors) embeds the same chunks, so each tile goes through the model in the same batch: the
results are then bit-identical whichever runner made them (a row's float numbers depend slightly on
the batch it was computed in), not merely close. Results come back in any order, tagged with their
chunk; :class:`SlideAssembler` puts them in place and says when a slide is whole, so it can be
written at once (resume per slide).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SlideTiles:
    """One slide to embed: where to read it and its tile grid (level-0 x, y, size)."""

    slide_id: str
    path: str
    reader: str
    x: np.ndarray
    y: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Chunk:
    """Tiles ``start:stop`` of slide number ``slide`` (a position in :attr:`EmbedJob.slides`)."""

    slide: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class ChunkResult:
    """What a runner gives back for chunk number ``chunk``: float16 ``feats`` (one row a tile;
    rows of unreadable tiles are zeroed by the assembler) and ``errors`` as (row in chunk, reason)."""

    chunk: int
    feats: np.ndarray
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class EmbedJob:
    """The slides to embed and their chunks, in slide order."""

    slides: list[SlideTiles]
    chunks: list[Chunk]

    @classmethod
    def build(cls, slides: list[SlideTiles], batch_size: int) -> EmbedJob:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        chunks = [
            Chunk(s, start, min(start + batch_size, len(tiles)))
            for s, tiles in enumerate(slides)
            for start in range(0, len(tiles), batch_size)
        ]
        return cls(slides, chunks)

    @property
    def n_tiles(self) -> int:
        return sum(len(s) for s in self.slides)

    def offsets(self) -> np.ndarray:
        """Index of each slide's first tile in the concatenation of all slides' tiles."""
        return np.concatenate([[0], np.cumsum([len(s) for s in self.slides])]).astype(np.int64)

    def flat(self) -> dict[str, Any]:
        """All tiles as flat arrays (slide number, x, y, size), in slide order: a reader's table."""
        return {
            "slide_index": np.repeat(np.arange(len(self.slides)), [len(s) for s in self.slides]),
            **{k: np.concatenate([getattr(s, k) for s in self.slides]) for k in ("x", "y", "size")},
        }


class SlideAssembler:
    """Collects chunk results into per-slide float16 buffers; a slide is whole when every row came."""

    def __init__(self, job: EmbedJob, dim: int) -> None:
        self.job, self.dim = job, dim
        self._bufs: dict[int, np.ndarray] = {}
        self._errors: dict[int, list[tuple[int, str]]] = {}
        self._filled = np.zeros(len(job.slides), np.int64)
        self._seen: set[int] = set()

    def add(self, result: ChunkResult) -> int | None:
        """Put one result in place; returns the slide number when that slide is now complete."""
        if result.chunk in self._seen:  # a retried task's second answer: count every tile once
            return None
        self._seen.add(result.chunk)
        chunk = self.job.chunks[result.chunk]
        n = len(self.job.slides[chunk.slide])
        buf = self._bufs.get(chunk.slide)
        if buf is None:
            buf = self._bufs[chunk.slide] = np.zeros((n, self.dim), np.float16)
        if result.feats.shape != (len(chunk), self.dim):
            raise RuntimeError(
                f"chunk {result.chunk}: got {result.feats.shape}, expected {(len(chunk), self.dim)}"
            )
        buf[chunk.start : chunk.stop] = result.feats
        errors = self._errors.setdefault(chunk.slide, [])
        for row, text in result.errors:
            buf[chunk.start + row] = 0  # an unreadable tile is a zero row: selection skips it
            errors.append((chunk.start + row, text))
        self._filled[chunk.slide] += len(chunk)
        return chunk.slide if self._filled[chunk.slide] == n else None

    def pop(self, slide: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """A complete slide's array and its tile errors in row order; its memory is released."""
        errors = sorted(self._errors.pop(slide, []))
        return self._bufs.pop(slide), errors


def whole_slides(
    job: EmbedJob, results: Iterable[ChunkResult], dim: int, bar: Any
) -> Iterator[tuple[str, np.ndarray, list[tuple[int, str]]]]:
    """``(slide_id, array, tile errors)`` for each slide the moment its last chunk arrives.

    The one loop every consumer of chunk results (``embed``, ``features``) runs: chunks are put
    in place (a retried chunk counted once), the progress bar advances per chunk, and a finished
    slide's buffer leaves memory as it is handed over."""
    assembler = SlideAssembler(job, dim)
    for result in results:
        s = assembler.add(result)
        bar.advance(job.slides[job.chunks[result.chunk].slide].slide_id)
        if s is not None:
            buf, tile_errors = assembler.pop(s)
            yield job.slides[s].slide_id, buf, tile_errors
