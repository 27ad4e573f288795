"""`pathgen video` on a real MP4 built from real patches: histology kept, screens dropped, text aligned."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pathgen.config import VideoConfig
from pathgen.export.shards import iter_tar_samples
from pathgen.video.stage import run_video

# the lecture's scenes are 3-4 s; a 1.5-s stable clip catches each, a 0.5-s window keeps neighbours out
CFG = dict(min_stable_s=1.5, lead_s=0.5, lag_s=0.5, workers=1)


def _pairs(dataset: Path) -> list[dict]:
    out = []
    for tar in sorted((dataset / "shards").glob("*.tar")):
        for _key, fields in iter_tar_samples(tar):
            meta = json.loads(fields["json"])
            assert fields["txt"].decode() == meta["caption"]
            assert fields["jpg"][:2] == b"\xff\xd8"
            out.append(meta)
    return out


def _check_lecture(lecture, dataset: Path) -> list[dict]:
    """Each histology scene gives exactly one pair, at its time, with its own narration only."""
    pairs = _pairs(dataset)
    spans = lecture.spans()
    histology = [(a, b, s) for a, b, s in spans if s.histology]
    assert len(pairs) == len(histology)
    for meta, (a, b, scene) in zip(sorted(pairs, key=lambda m: m["t"]), histology, strict=True):
        assert a <= meta["t"] < b, (meta["t"], a, b)
        assert meta["caption"] == scene.text  # its window's sentence, no neighbour's
        assert meta["source"] == "video" and meta["video_id"] == "colon_lecture"
        assert meta["text_start"] == pytest.approx(a, abs=0.01) and meta["text_end"] == pytest.approx(
            b, abs=0.01
        )
        assert 0.9 <= meta["confidence"] <= 1.0  # certain histology, narrated exactly while shown
        assert meta["transcript_source"] == "sidecar:srt"
        assert json.loads(meta["keywords"])  # vocabulary terms found in the sentence
    return pairs


def test_colour_classifier_keeps_histology_and_aligns_text(lecture, tmp_path: Path) -> None:
    report = run_video([lecture.path], tmp_path / "pairs", VideoConfig(**CFG))
    row = report.rows[0]
    assert row["status"] == "ok" and row["error"] is None
    assert row["stable_clips"] == len(lecture.scenes)  # one stable clip per screen
    assert row["shots"] == len(lecture.scenes)
    assert row["not_histology"] == 4 and row["kept_frames"] == 3
    pairs = _check_lecture(lecture, tmp_path / "pairs" / "video")
    assert {json.loads(p["keywords"])[0] for p in pairs} >= {"lymphocytes", "smooth muscle"}
    index = pq.read_table(tmp_path / "pairs" / "video" / "index.parquet").to_pylist()
    assert [r["source"] for r in index] == ["video"] * 3
    card = (tmp_path / "pairs" / "video" / "README.md").read_text()
    assert "pathgen video" in card and "rule-based" in card
    mix = yaml.safe_load((tmp_path / "pairs" / "mix.yaml").read_text())
    assert [(s["name"], s["n_samples"]) for s in mix["sets"]] == [("video", 3)]
    rows = pq.read_table(tmp_path / "pairs" / "video-work" / "videos.parquet").to_pylist()
    assert rows[0]["pairs"] == 3


def test_trained_head_keeps_histology(lecture, labelled_frames: Path, tmp_path: Path) -> None:
    """A head trained here on the shared patches vs rendered screens (none of the lecture's own)."""
    from typer.testing import CliRunner

    from pathgen.cli import app

    head = tmp_path / "head.safetensors"
    result = CliRunner().invoke(app, ["video", "train-classifier", str(labelled_frames), "--out", str(head)])
    assert result.exit_code == 0, result.output
    assert head.is_file()
    out = tmp_path / "pairs"
    args = [
        "video",
        str(lecture.path.parent),
        "--out",
        str(out),
        "--classifier",
        f"head:{head}",
        "--min-stable-s",
        "1.5",
        "--lead-s",
        "0.5",
        "--lag-s",
        "0.5",
        "--workers",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    _check_lecture(lecture, out / "video")
    report = json.loads((out / "video" / "report.json").read_text())
    assert report["classifier"] == f"head:{head}" and report["failed"] == 0


def test_resume_and_ingest_against(lecture, tmp_path: Path) -> None:
    """A second run reuses every video's work and keeps the shards; ingest finds the frames as duplicates."""
    from pathgen.export.ingest import ingest

    out = tmp_path / "pairs"
    cfg = VideoConfig(**CFG)
    first = run_video([lecture.path], out, cfg)
    assert first.summary["shards_written"] == 1
    second = run_video([lecture.path], out, cfg)
    assert second.rows[0]["resumed"] and second.summary["shards_kept"] == 1
    assert second.summary["pairs"] == first.summary["pairs"] == 3
    # alignment settings act on the cached analysis: the video is not decoded again, the pairs change
    third = run_video([lecture.path], out, cfg.model_copy(update={"lead_s": 0.25}))
    assert third.rows[0]["resumed"] and third.summary["shards_written"] == 1
    assert {m["window_start"] for m in _pairs(out / "video")} == {3.75, 11.75, 18.75}
    # a table of other pairs that reuses one of the video's frames: ingest flags it against the set
    frame = sorted((out / "video-work" / "videos" / "colon_lecture" / "frames").glob("*.jpg"))[0]
    table = tmp_path / "other.csv"
    table.write_text(f"image,caption\n{frame.name},a reused frame\n")
    rep = ingest("table", table, tmp_path / "other", "other", images=frame.parent, against=[out / "video"])
    assert rep["exact_duplicates"] == 1 and rep["done"] == 0
