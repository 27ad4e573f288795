"""`pathgen embed` and `pathgen select` through the real command line app."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from pathgen.cli import app


def test_embed_then_select_then_nothing_to_do(run_copy):
    runner = CliRunner()
    res = runner.invoke(app, ["embed", str(run_copy.root), "--encoder", "tiny", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output
    args = ["select", str(run_copy.root), "--cap", "6", "--top-k", "2", "--dedup", "0.995"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "select ->" in res.output
    table = pq.read_table(run_copy.selected).to_pandas()
    assert len(table) and (table.groupby("slide_id").size() <= 6).all()
    assert set(table["reason"]) <= {"attribute", "finding", "cluster"}
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "up to date" in again.output


def test_bad_encoder_and_missing_run_exit_cleanly(run_copy, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["embed", str(run_copy.root), "--encoder", "open_clip:ViT-B-61"])
    assert res.exit_code == 2 and "did you mean" in res.output
    res = runner.invoke(app, ["select", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "pathgen embed" in res.output
    res = runner.invoke(app, ["select", str(run_copy.root), "--dedup", "1.5"])
    assert res.exit_code == 2 and "dedup_threshold" in res.output
