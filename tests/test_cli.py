"""The `pathgen` command lists the pipeline's stages in order and starts without heavy imports."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from pathgen.cli import app

STAGES_IN_ORDER = ["tile", "embed", "select", "caption", "export", "run", "demo"]


def test_help_lists_stages_in_pipeline_order():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    positions = []
    for stage in STAGES_IN_ORDER:
        hits = [i for i, line in enumerate(lines) if line.strip(" │|").split(" ")[0] == stage]
        assert hits, f"`{stage}` missing from pathgen --help:\n{result.output}"
        positions.append(hits[0])
    order = dict(zip(STAGES_IN_ORDER, positions, strict=True))
    assert positions == sorted(positions), f"stages out of order: {order}"
    for other in ("ingest", "train", "eval"):
        assert any(line.strip(" │|").split(" ")[0] == other for line in lines), other


def test_help_does_not_import_torch():
    code = (
        "import sys; from pathgen.cli import app; "
        "print(*(m in sys.modules for m in ('torch', 'open_clip', 'pydantic', 'pathgen.config')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False", "False"]  # help text fills defaults lazily
