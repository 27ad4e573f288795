"""Reading tiles for the encoder: one open handle per slide per process, errors as values.

Tiles are read through :func:`pathgen.slides.read_tile` at the encoder's input size, so a pyramid
level serves the read instead of a full level-0 decode, and preprocessed with the encoder's own
transform. A tile that cannot be read becomes a blank image plus an error text, never an exception:
one bad tile must not stop a loader (or a Ray task) that carries a whole batch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

HANDLES_PER_PROCESS = 4  # tiles arrive slide by slide: a few open slides are enough


class SlideHandles:
    """A small LRU of open slides, keyed by (path, reader); per process, never pickled."""

    def __init__(self, keep: int = HANDLES_PER_PROCESS) -> None:
        self.keep = keep
        self._open: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, path: str, reader: str) -> Any:
        from pathgen.slides import open_slide

        key = (path, reader or "auto")
        handle = self._open.get(key)
        if handle is None:
            handle = self._open[key] = open_slide(path, reader=key[1]).open()
            while len(self._open) > self.keep:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(key)
        return handle

    def __getstate__(self) -> dict[str, Any]:  # a copy in another process opens its own handles
        return {"keep": self.keep, "_open": OrderedDict()}


class TileDataset:
    """Map-style dataset over tiles: (index, preprocessed image, error text or '')."""

    def __init__(
        self,
        paths: list[str],
        readers: list[str],
        slide_index: np.ndarray,
        xs: np.ndarray,
        ys: np.ndarray,
        sizes: np.ndarray,
        image_size: int,
        preprocess: Any,
        handles: SlideHandles | None = None,
    ):
        self.paths, self.readers = paths, readers
        self.slide_index, self.xs, self.ys, self.sizes = slide_index, xs, ys, sizes
        self.image_size = image_size
        self.preprocess = preprocess
        self.handles = handles if handles is not None else SlideHandles()

    def __len__(self) -> int:
        return len(self.xs)

    def __getitem__(self, i: int) -> tuple[int, Any, str]:
        import torch

        from pathgen.slides import read_tile

        try:
            s = int(self.slide_index[i])
            slide = self.handles.get(self.paths[s], self.readers[s])
            image = read_tile(slide, int(self.xs[i]), int(self.ys[i]), int(self.sizes[i]), self.image_size)
            return i, self.preprocess(image), ""
        except Exception as exc:  # one bad tile is a row with an error, never a dead loader
            blank = torch.zeros(3, self.image_size, self.image_size)
            return i, blank, f"{type(exc).__name__}: {exc}"[:500]
