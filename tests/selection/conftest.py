"""A real two-slide run (tiled and embedded with the tiny encoder) shared by the selection tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pathgen.config import EmbedConfig, TileConfig
from pathgen.rundir import RunDir

REPORT = """SPECIMEN: A. SKIN, LEFT BACK, EXCISION:
FINAL DIAGNOSIS:
- Invasive malignant melanoma with nests of atypical epithelioid melanocytes in the dermis; ulceration.
- Brisk tumor-infiltrating lymphocytes at the base.
Electronically signed by the pathologist.
"""


@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory, cmu_small: Path, tcga_jp2k: Path) -> RunDir:
    """CMU-1-Small-Region (project SKCM, with a report) + the TCGA JPEG 2000 slide (HNSC, no report)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pathgen.embed import embed_stage
    from pathgen.slides.stage import tile_stage

    root = tmp_path_factory.mktemp("selection-run")
    manifest = root / "manifest.parquet"
    pq.write_table(
        pa.table(
            {
                "path": [str(cmu_small), str(tcga_jp2k)],
                "project": ["SKCM", "TCGA-HNSC"],
                "report": [REPORT, None],
            }
        ),
        manifest,
    )
    run = RunDir(root / "run")
    summary = tile_stage([str(manifest)], run, TileConfig(size=448, workers=1, assume_mpp=0.5))
    assert summary["failed"] == 0 and summary["n_tiles"] > 40
    result = embed_stage(run, EmbedConfig(encoder="tiny", workers=0, batch_size=64, device="cpu"))
    assert result["failed"] == 0
    return run


@pytest.fixture(scope="session")
def report_text() -> str:
    return REPORT


@pytest.fixture
def run_copy(embedded_run: RunDir, tmp_path: Path) -> RunDir:
    """A private copy of the embedded run (selection state not included)."""
    dst = tmp_path / "run"
    shutil.copytree(embedded_run.root, dst, ignore=shutil.ignore_patterns("selected.parquet", "select.json"))
    return RunDir(dst)
