"""The `export --from-pathgen-json` and `ingest` commands: thin layers that report and fail clearly."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from pathgen.cli import app


def test_export_from_pathgen_json_cli(slides_dir, tmp_path):
    src = tmp_path / "records.json"
    src.write_text(
        json.dumps(
            [
                {"wsi_id": "CMU-1-Small-Region", "position": ["0", "672"], "caption": "Dermis."},
                {"wsi_id": "TCGA-AA-0000", "position": ["0", "0"], "caption": "Missing slide."},
            ]
        )
    )
    out = tmp_path / "out"
    args = ["export", "--from-pathgen-json", str(src), "--slides", str(slides_dir), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--image-size", "224"])
    assert result.exit_code == 0, result.output
    assert "2 records: 1 materialised, 1 skipped" in " ".join(result.output.split())
    assert json.loads((out / "pathgen.json").read_text())[0]["position"] == ["0", "672"]

    result = CliRunner().invoke(app, ["export", "--from-pathgen-json", str(src), "--out", str(out)])
    assert result.exit_code == 2 and "--slides" in result.output
    result = CliRunner().invoke(app, ["export"])
    assert result.exit_code == 2 and "run directory" in result.output


def test_ingest_cli(crc_patches, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, p in enumerate(sorted(crc_patches.rglob("*.png"))[:3]):
        Image.open(p).save(images / f"u{i}.png")
    captions = {str(i): {"caption": f"Figure {i}: colon tissue.", "uuid": f"u{i}"} for i in range(4)}
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    out = tmp_path / "pairs"
    result = CliRunner().invoke(
        app, ["ingest", "arch", str(tmp_path / "captions.json"), "--images", str(images), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "skipped: missing_image" in text and (out / "mix.yaml").exists()
    assert json.loads((out / "arch" / "report.json").read_text())["done"] == 3

    result = CliRunner().invoke(app, ["ingest", "laion", "x.csv", "--out", str(out)])
    assert result.exit_code == 2 and "valid formats" in result.output
