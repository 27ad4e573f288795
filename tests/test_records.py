"""The one tile record: built from any stage's parquet rows plus the slide's, with the slide's reader."""

from __future__ import annotations

import dataclasses

import pytest

from pathgen.records import CaptionTile, SelectedTile, TileRecord

TILE = {
    "tile_id": "s1:0:672:672",
    "slide_id": "s1",
    "x": 0,
    "y": 672,
    "size": 672,
    "level": 0,
    "tissue_fraction": 0.9,
}
SLIDE = {"slide_id": "s1", "path": "/data/s1.svs", "reader": "tiffslide", "mpp": 0.25, "project": "TCGA-LUAD"}


def test_a_record_carries_its_slides_path_reader_and_mpp():
    tile = TileRecord.from_rows(TILE, SLIDE)
    assert (tile.slide_path, tile.reader, tile.mpp, tile.level) == ("/data/s1.svs", "tiffslide", 0.25, 0)
    assert TileRecord.from_rows(TILE).reader == "auto"  # no slide row: the reader picks by extension
    assert TileRecord.from_rows(TILE, {**SLIDE, "reader": None}).reader == "auto"


def test_stages_extend_the_record_with_what_they_know():
    row = {**TILE, "reason": "attribute", "score": 0.3, "cluster": 2, "prompt": ""}
    selected = SelectedTile.from_rows(row, SLIDE)
    assert isinstance(selected, TileRecord) and selected.reason == "attribute" and selected.prompt is None
    assert not hasattr(selected, "project")  # a slide fact only the caption record holds
    caption = CaptionTile.from_rows({**row, "prompt": "acinar"}, SLIDE, findings=("a", "b"))
    assert (caption.project, caption.findings, caption.selection_prompt) == (
        "TCGA-LUAD",
        ("a", "b"),
        "acinar",
    )
    assert caption.as_row()["reader"] == "tiffslide"
    with pytest.raises(dataclasses.FrozenInstanceError):
        caption.x = 1  # type: ignore[misc]


def test_a_row_without_a_tiles_position_is_refused_by_name():
    with pytest.raises(ValueError, match=r"\['size', 'x'\]"):
        TileRecord.from_rows({"tile_id": "t", "slide_id": "s", "y": 0})


def test_a_record_reads_its_tile_with_the_recorded_reader(cmu_small):
    tile = TileRecord.from_rows({**TILE, "x": 0, "y": 448, "size": 224}, {**SLIDE, "path": str(cmu_small)})
    image = tile.read(64)
    assert image.size == (64, 64) and image.mode == "RGB"
    with pytest.raises(ValueError, match="no path"):
        TileRecord.from_rows(TILE).read(64)
