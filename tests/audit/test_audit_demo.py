"""`pathgen audit` on the demo run with planted patches made from real ones, then export's
--drop-flag."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from pathgen.cli import app


def _mosaic(paths: list[Path]) -> np.ndarray:
    """A 672 px patch of 3x3 real 224 px CRC patches (the export's image size)."""
    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return np.vstack([np.hstack(tiles[i * 3 : i * 3 + 3]) for i in range(3)])


def _pen(image: np.ndarray) -> np.ndarray:
    """Green marker ink drawn over a patch (a stroke as a pathologist circles a region)."""
    out = Image.fromarray(image)
    ImageDraw.Draw(out).line([(20, 600), (300, 350), (650, 420)], fill=(30, 120, 60), width=28)
    return np.asarray(out)


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _replace_images(shards: Path, new: dict[str, bytes]) -> None:
    """Rewrite the shards with ``new`` JPEGs for some keys (all other members byte for byte)."""
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]
        with tarfile.open(tar_path, "w") as tar:
            for m, data in members:
                key, ext = m.name.split(".", 1)
                if ext == "jpg" and key in new:
                    data = new[key]
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))


@pytest.fixture(scope="module")
def planted(demo_run_template, crc_patches, tmp_path_factory):
    """The demo run with pair 0 a blurred real patch, pair 1 a pen-marked one, pairs 2 and 3 the
    same patches untouched (controls); pairs 4.. are the demo's own patches."""
    run = tmp_path_factory.mktemp("audit") / "run"
    shutil.copytree(demo_run_template, run)
    files = sorted(crc_patches.glob("*/*.png"))
    a, b = _mosaic(files[9:18]), _mosaic(files[18:27])
    index = pq.read_table(run / "export" / "index.parquet").to_pylist()
    keys = [r["key"] for r in index]
    images = {
        keys[0]: _jpeg(cv2.GaussianBlur(a, (0, 0), 3)),
        keys[1]: _jpeg(_pen(b)),
        keys[2]: _jpeg(a),
        keys[3]: _jpeg(b),
    }
    _replace_images(run / "export" / "shards", images)
    return run, [r["tile_id"] for r in index]


def test_audit_flags_the_planted_patches_only(planted):
    run, tiles = planted
    result = CliRunner().invoke(app, ["audit", str(run)])
    assert result.exit_code == 0, result.output
    rows = {r["tile_id"]: r for r in pq.read_table(run / "audit" / "flags.parquet").to_pylist()}
    assert set(rows) == set(tiles) and all(
        r["error"] is None and r["source"] == "shard" for r in rows.values()
    )
    assert "blur" in rows[tiles[0]]["flags"] and rows[tiles[0]]["flag_blur"]
    assert "pen" in rows[tiles[1]]["flags"] and rows[tiles[1]]["flag_pen"]
    assert "blur" not in rows[tiles[1]]["flags"] and "pen" not in rows[tiles[0]]["flags"]
    for tid in tiles[2:]:  # the untouched copies and the demo's own patches
        assert not {"blur", "pen"} & set(rows[tid]["flags"]), (tid, rows[tid])
    # the blurred copy measures far below its sharp original
    assert rows[tiles[0]]["laplacian_var"] * 10 < rows[tiles[2]]["laplacian_var"]
    # the lowest-aligned pair (ceil(5% of 8) = 1) is flagged, and it is the lowest
    low = [t for t, r in rows.items() if "misaligned" in r["flags"]]
    assert low == [min(rows, key=lambda t: rows[t]["alignment"])]

    summary = json.loads((run / "audit" / "summary.json").read_text())
    assert summary["by_flag"]["blur"] == 1 and summary["by_flag"]["pen"] == 1
    assert summary["sites"] == {"(not TCGA)": 4, "CR": 4} and summary["projects"]["TCGA-HNSC"] == 4
    assert summary["leakage"]["accuracy"] is None and "two TCGA sites" in summary["leakage"]["note"]
    report = (run / "audit" / "report.html").read_text()
    assert 'id="flag-blur"' in report and 'id="flag-pen"' in report and "data:image/png;base64," in report
    assert report.count("data:image/jpeg;base64,") >= 3  # example strips
    assert "random weights" in report and summary["encoder"] == "tiny"  # the demo embeds with tiny

    again = CliRunner().invoke(app, ["audit", str(run)])
    assert again.exit_code == 0 and "up to date" in again.output


def test_export_drops_flagged_pairs(planted):
    run, tiles = planted
    assert CliRunner().invoke(app, ["audit", str(run)]).exit_code == 0
    bad = CliRunner().invoke(app, ["export", str(run), "--drop-flag", "blurry"])
    assert bad.exit_code == 2 and "unknown audit flag 'blurry'" in " ".join(bad.output.split())
    result = CliRunner().invoke(app, ["export", str(run), "--drop-flag", "blur,pen"])
    assert result.exit_code == 0, result.output
    index = pq.read_table(run / "export" / "index.parquet").to_pylist()
    assert [r["tile_id"] for r in index] == tiles[2:]
    card = (run / "export" / "README.md").read_text()
    assert "audit_blur | 1" in card and "audit_pen | 1" in card and "audit flags dropped**: blur, pen" in card


def test_drop_flag_needs_an_audit_and_the_audit_reads_slides_without_an_export(demo_run_template, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run_template, run)
    shutil.rmtree(run / "export")
    result = CliRunner().invoke(app, ["export", str(run), "--drop-flag", "pen"])
    assert result.exit_code == 2 and "pathgen audit" in " ".join(result.output.split())
    assert not (run / "export").exists()

    from pathgen.audit.stage import audit_stage
    from pathgen.config import AuditConfig
    from pathgen.rundir import RunDir

    summary = audit_stage(RunDir(run), AuditConfig())
    rows = pq.read_table(run / "audit" / "flags.parquet").to_pylist()
    assert summary["pairs"] == len(rows) == 8 and summary["failed"] == 0
    assert all(r["source"] == "slide" and r["laplacian_var"] > 100 for r in rows)
