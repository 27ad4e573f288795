"""`--executor local` and `--executor ray` give the same run: tiles, selection and the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pathgen.cli import app

pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pathgen-vl[ray]'")


def _demo(out: Path, slides_dir: Path, *extra: str) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--slides", str(slides_dir), *extra])
    assert result.exit_code == 0, result.output


def _rows(path: Path, drop: tuple[str, ...] = ()) -> list[dict]:
    rows = pq.read_table(path).to_pylist()
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=str)


def test_demo_on_ray_equals_demo_local(slides_dir: Path, tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    _demo(local, slides_dir)
    _demo(remote, slides_dir, "--executor", "ray")
    assert (remote / "config.yaml").read_text().count("kind: ray") == 1
    assert _rows(remote / "tiles.parquet") == _rows(local / "tiles.parquet")
    assert _rows(remote / "selected.parquet") == _rows(local / "selected.parquet")
    released = json.loads((local / "export" / "pathgen.json").read_text())
    assert released, "the local demo exported nothing"
    assert json.loads((remote / "export" / "pathgen.json").read_text()) == released
