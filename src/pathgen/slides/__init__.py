"""Whole-slide images: open any slide, find tissue, grid it into tiles, read a tile.

`open_slide` and `read_tile` are the public entry points other stages use; the tiling stage is
`pathgen.slides.stage.tile_stage`. Importing this package loads no slide library: OpenSlide,
tiffslide and wsidicom are imported when a slide is first opened.
"""

from __future__ import annotations

from pathgen.slides.backends import SlideOpenError
from pathgen.slides.patches import choose_level, read_tile, read_tile_array
from pathgen.slides.readers import READERS, SLIDE_EXTENSIONS, Slide, open_slide

__all__ = [
    "READERS",
    "SLIDE_EXTENSIONS",
    "Slide",
    "SlideOpenError",
    "choose_level",
    "open_slide",
    "read_tile",
    "read_tile_array",
]
