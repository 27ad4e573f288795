"""The main job end to end: `pathgen demo` on the real sample slides, then resume, re-export, render;
and `pathgen demo` from a built wheel on a machine with no shared data folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from browser import chromium, needs_chromium
from pathgen.cli import app
from pathgen.config import RunConfig
from pathgen.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_run(slides_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--slides", str(slides_dir)])
    assert result.exit_code == 0, result.output
    return out, result.output


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_demo_writes_the_whole_dataset(demo_run, slides_dir):
    out, output = demo_run
    text = " ".join(output.split())
    assert "NOT meaningful" in text and "vllm serve" in text and "--base-url" in text
    export = out / "export"
    for name in (
        "pathgen.json",
        "index.parquet",
        "README.md",
        "gallery.html",
        "shards/sizes.json",
        "errors.json",
    ):
        assert (export / name).exists(), name
    assert (export / "card" / "caption_clip_tokens.png").exists()

    tiles = {(r["slide_id"], r["x"], r["y"]) for r in pq.read_table(out / "tiles.parquet").to_pylist()}
    records = json.loads((export / "pathgen.json").read_text())
    sizes = json.loads((export / "shards" / "sizes.json").read_text())
    index = pq.read_table(export / "index.parquet").to_pylist()
    assert len(records) == len(index) == sum(sizes.values()) >= 4
    for rec in records:
        assert set(rec) == {"wsi_id", "position", "caption"} and all(
            isinstance(p, str) for p in rec["position"]
        )
        assert (rec["wsi_id"], int(rec["position"][0]), int(rec["position"][1])) in tiles
        assert rec["caption"].strip() and "\ufffd" not in rec["caption"]  # no cut multi-byte characters
    assert len({r["wsi_id"] for r in records}) == 2  # the DICOM sample is reported as an error by tiling
    # The demo's manifest gives the TCGA slide its project and both SVS slides a report, so both
    # prompt sets of the method choose tiles, each recording the prompt that did.
    selected = pq.read_table(out / "selected.parquet").to_pylist()
    assert {"attribute", "finding"} <= {r["reason"] for r in selected}
    assert all(r["prompt"] for r in selected if r["reason"] in ("attribute", "finding"))

    card = (export / "README.md").read_text()
    assert "TINY RANDOM" in card and f"{len(records)} image-caption pairs" in card

    first = index[0]
    slide_path = next(p for p in slides_dir.iterdir() if p.stem == first["slide_id"])
    with tarfile.open(export / "shards" / first["shard"]) as tar:
        meta = json.loads(tar.extractfile(f"{first['key']}.json").read())
        got = np.asarray(Image.open(io.BytesIO(tar.extractfile(f"{first['key']}.jpg").read())), np.int16)
    assert meta["models"]["describe"] and "offline_demo" in meta["flags"] and meta["description"]
    from pathgen.slides import open_slide

    with open_slide(slide_path) as slide:
        direct = slide.read_region((first["x"], first["y"]), 0, (672, 672)).astype(np.int16)
    assert got.shape == (672, 672, 3) and np.abs(got - direct).mean() < 2.5


def test_reexport_and_resume_change_nothing(demo_run):
    out, _ = demo_run
    before = _digests(out / "export")
    result = CliRunner().invoke(app, ["export", str(out)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output and _digests(out / "export") == before

    # `pathgen run` with the demo's resolved config resumes: every stage is already done.
    cfg = RunConfig.from_yaml(out / "config.yaml")
    cfg_path = out.parent / "again.yaml"
    cfg_path.write_text(cfg.to_yaml())
    result = CliRunner().invoke(app, ["run", str(cfg_path), "--until", "select"])
    assert result.exit_code == 0, result.output
    assert result.output.count("up to date") == 3, result.output
    assert RunDir(out).stage_status("export")["summary"]["pairs"] == len(
        json.loads((out / "export" / "pathgen.json").read_text())
    )


@needs_chromium
def test_demo_gallery_in_chromium(demo_run, tmp_path):
    out, _ = demo_run
    url = (out / "export" / "gallery.html").as_uri() + "#expand=1"
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "demo-gallery.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path / "profile", url, f"--screenshot={shot}", window="1280,1400")
    assert shot.stat().st_size > 50_000
    dom = chromium(tmp_path / "profile", url, "--dump-dom", window="1280,1400")
    n = len(json.loads((out / "export" / "pathgen.json").read_text()))
    imgs = re.findall(r"<img[^>]*>", dom)
    assert len(imgs) == min(n, 48) and all('data-loaded="1"' in i for i in imgs)
    assert dom.count("<details open") == len(imgs) and "TINY RANDOM" in dom


def test_example_configs_validate():
    demo = RunConfig.from_yaml(ROOT / "examples" / "demo.yaml")
    assert demo.slides == ["pathgen:sample"] and demo.out is not None  # no data folder needed
    cfg = RunConfig.from_yaml(ROOT / "examples" / "vllm.yaml")
    assert cfg.slides and cfg.slides[0].endswith("manifest.csv") and cfg.out is not None
    assert "shared" not in (ROOT / "examples" / "manifest.csv").read_text()
    vllm = yaml.safe_load((ROOT / "examples" / "vllm.yaml").read_text())
    assert vllm["caption"]["base_url"].startswith("http://") and vllm["embed"]["encoder"] != "tiny"
    header = (ROOT / "examples" / "manifest.csv").read_text().splitlines()[0]
    assert header.split(",")[:3] == ["path", "slide_id", "project"]


def test_export_reports_an_unreadable_slide(demo_run, tmp_path):
    import pyarrow as pa

    from pathgen.config import ExportConfig
    from pathgen.export.stage import export_stage
    from pathgen.rundir import write_parquet

    src, _ = demo_run
    run = tmp_path / "copy"
    shutil.copytree(src, run)
    slides = pq.read_table(run / "slides.parquet").to_pylist()
    for row in slides:
        if row["slide_id"] == "CMU-1-Small-Region":
            row["path"] = str(tmp_path / "moved-away.svs")
    write_parquet(pa.Table.from_pylist(slides), run / "slides.parquet")
    before = len(json.loads((run / "export" / "pathgen.json").read_text()))
    summary = export_stage(RunDir(run), ExportConfig(samples_per_shard=4))
    errors = json.loads((run / "export" / "errors.json").read_text())
    assert summary["up_to_date"] is False and summary["failed"] == len(errors) > 0
    assert all(e["tile_id"].startswith("CMU-1-Small-Region:") and "open" in e["error"] for e in errors)
    records = json.loads((run / "export" / "pathgen.json").read_text())
    assert len(records) == before - len(errors) and all(r["wsi_id"] != "CMU-1-Small-Region" for r in records)
    assert "read_failed" in (run / "export" / "README.md").read_text()


def test_export_that_would_be_empty_keeps_the_previous_one(demo_run, tmp_path, monkeypatch):
    """Slide paths that no longer resolve (a relative path read from another directory) make every
    patch read fail: the good export stays, and both `export` and `run` fail saying why."""
    import pyarrow as pa

    from pathgen.pipeline import PipelineError, run_pipeline
    from pathgen.rundir import write_parquet

    src, _ = demo_run
    run = tmp_path / "copy"
    shutil.copytree(src, run)
    slides = pq.read_table(run / "slides.parquet").to_pylist()
    assert all(Path(r["path"]).is_absolute() for r in slides), "tile stores absolute slide paths"
    for row in slides:
        row["path"] = str(Path("relative") / Path(row["path"]).name)
    write_parquet(pa.Table.from_pylist(slides), run / "slides.parquet")
    before = _digests(run / "export")
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(app, ["export", str(run)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "every patch read failed" in text and "was left as it was" in text and "file not found" in text
    assert _digests(run / "export") == before

    with pytest.raises(PipelineError, match="every patch read failed"):
        run_pipeline(RunConfig.from_yaml(run / "config.yaml"), run)
    assert _digests(run / "export") == before


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """pathgen as `pip install pathgen-vl` lays it out: the built wheel unpacked into a folder of
    its own, far from the checkout (built from a copy of the sources, so the checkout gets no build/)."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (the dev extra)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp.glob("pathgen_vl-*.whl")
    site = tmp / "site-packages"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_wheel_ships_the_sample(installed_wheel):
    shipped = ROOT / "src" / "pathgen" / "sample"
    want = {p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()}
    sample = installed_wheel / "pathgen" / "sample"
    got = {p.relative_to(sample).as_posix() for p in sample.rglob("*") if p.is_file()}
    assert got == want and {"NOTICE.md", "manifest.csv", "slides/CMU-1-Small-Region.svs"} <= got


@pytest.mark.slow
def test_demo_runs_with_no_shared_data_folder(installed_wheel, tmp_path):
    """`pip install pathgen-vl && pathgen demo` anywhere: the installed package alone, run from a
    folder of its own, with the shared data folder pointed at nothing; the slides it tiled are the
    package's own."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ)
    env.update(PYTHONPATH=str(installed_wheel), PATHGEN_SHARED_DATA=str(tmp_path / "no-shared-data"))
    result = subprocess.run(
        [sys.executable, "-m", "pathgen.cli", "demo", "--out", "run"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = work / "run"
    sample = (installed_wheel / "pathgen" / "sample").resolve()
    slides = pq.read_table(run / "slides.parquet").to_pylist()
    assert [r["slide_id"] for r in slides] == ["CMU-1-Small-Region"] and slides[0]["status"] == "ok"
    assert all(Path(r["path"]).resolve().is_relative_to(sample) for r in slides), slides
    assert not (tmp_path / "no-shared-data").exists()
    records = json.loads((run / "export" / "pathgen.json").read_text())
    assert len(records) >= 1 and {r["wsi_id"] for r in records} == {"CMU-1-Small-Region"}
    assert RunConfig.from_yaml(run / "config.yaml").slides == ["pathgen:sample"]
