"""Configuration: published defaults, YAML round trip, typos fail before any work."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from pathgen.config import RunConfig


def test_defaults_are_the_published_method():
    cfg = RunConfig()
    assert cfg.tile.size == 672 and cfg.tile.min_tissue == 0.5 and cfg.tile.mpp is None
    assert cfg.tile.thumbnail_downsample == 32
    assert cfg.select.top_k_attribute == 64 and cfg.select.top_k_finding == 64
    assert cfg.select.per_slide_cap == 256 and cfg.select.dedup_threshold == 0.88
    assert cfg.caption.context_length == 77


def test_yaml_round_trip_and_relative_paths(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.yaml"
    path.write_text("slides: ../slides\nout: ../run\ntile:\n  size: 224\n  mpp: 0.5\n")
    cfg = RunConfig.from_yaml(path)
    assert cfg.slides == [str(tmp_path / "cfg" / ".." / "slides")]
    assert cfg.tile.size == 224 and cfg.tile.mpp == 0.5
    again = tmp_path / "again.yaml"
    again.write_text(cfg.to_yaml())
    assert RunConfig.from_yaml(again) == cfg


@pytest.mark.parametrize(
    "text, field",
    [
        ("tile:\n  szie: 224\n", "szie"),
        ("tile:\n  min_tissue: 1.5\n", "min_tissue"),
        ("colour: red\n", "colour"),
    ],
)
def test_bad_config_fails_naming_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(pydantic.ValidationError, match=field):
        RunConfig.from_yaml(path)


def test_missing_config_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        RunConfig.from_yaml(tmp_path / "nope.yaml")


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("out: runs/x\nslides: [manifest.csv\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML \(line \d+, column \d+\)"):
        RunConfig.from_yaml(path)


def test_relative_paths_become_absolute_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.yaml"
    path.write_text("slides: [../slides]\nout: ../runs/a\n")
    monkeypatch.chdir(tmp_path / "cfg")
    cfg = RunConfig.from_yaml("run.yaml")
    assert Path(cfg.slides[0]).is_absolute() and Path(cfg.out).is_absolute()
    assert Path(cfg.out).resolve() == (tmp_path / "runs" / "a").resolve()
