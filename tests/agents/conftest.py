"""A hand-made run over real tiles of CMU-1-Small-Region.svs (no dependency on the select stage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathgen.rundir import RunDir, write_parquet


def make_run(root: Path, slide: Path, n_tiles: int = 12, size: int = 224) -> RunDir:
    """slides.parquet + selected.parquet with ``n_tiles`` tiles of a real slide, row by row."""
    run = RunDir(root).ensure()
    slide_id = slide.stem
    write_parquet(
        [
            {
                "slide_id": slide_id,
                "path": str(slide),
                "vendor": "aperio",
                "status": "ok",
                "project": "TCGA-SKCM (skin)",
                "report": "Sections show skin with a dermal proliferation of atypical melanocytes. "
                "Mitotic figures are identified. Margins are free of tumour.",
            }
        ],
        run.slides,
    )
    rows = []
    for i in range(n_tiles):
        x, y = (i % 9) * size, (i // 9) * size + 448
        rows.append(
            {
                "tile_id": f"{slide_id}:{x}:{y}:{size}",
                "slide_id": slide_id,
                "x": x,
                "y": y,
                "size": size,
                "reason": "cluster" if i % 2 else "attribute",
                "score": 0.5,
                "cluster": i % 3,
                "prompt": None if i % 2 else "nests of atypical melanocytes",
            }
        )
    write_parquet(rows, run.selected)
    return run


@pytest.fixture
def cmu_run(tmp_path: Path, cmu_small: Path) -> RunDir:
    return make_run(tmp_path / "run", cmu_small)


@pytest.fixture
def make_cmu_run(tmp_path: Path, cmu_small: Path):
    """A factory: ``make_cmu_run(n_tiles)`` -> a fresh run with that many real tiles."""
    return lambda n_tiles=12: make_run(tmp_path / f"run-{n_tiles}", cmu_small, n_tiles=n_tiles)
