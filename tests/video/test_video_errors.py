"""Bad input gets per-video error rows; the rest of the folder is processed."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq

from pathgen.config import VideoConfig
from pathgen.video.stage import run_video
from pathgen.video.synth import tone_speech, write_video


def _audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An MP4 with an AAC stream and no video stream."""
    import av
    import numpy as np

    samples = tone_speech(seconds)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for start in range(0, len(samples), 1024):
            block = np.pad(
                samples[start : start + 1024], (0, max(0, 1024 - len(samples[start : start + 1024])))
            )
            frame = av.AudioFrame.from_ndarray(
                block[None, :].astype(np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_bad_videos_are_rows_and_the_rest_is_processed(lecture, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(lecture.path, folder / "good.mp4")
    shutil.copy(lecture.path.with_suffix(".srt"), folder / "good.srt")
    # corrupt: the first 4 KB of a real MP4 (truncated container), and plain garbage
    (folder / "truncated.mp4").write_bytes(lecture.path.read_bytes()[:4096])
    (folder / "garbage.mkv").write_bytes(b"\x00not a video at all" * 100)
    # a video without audio and without transcript
    write_video(folder / "silent.mp4", lecture.scenes[:2], fps=4)
    # a transcript with broken timestamps
    shutil.copy(lecture.path, folder / "broken_times.mp4")
    (folder / "broken_times.srt").write_text("1\n00:00:01,000 --> 00:00:xx,500\nHello.\n")
    shutil.copy(lecture.path, folder / "backwards.mp4")
    (folder / "backwards.vtt").write_text("WEBVTT\n\n00:05.000 --> 00:02.000\nTime runs backwards.\n")
    # no frames: an audio-only MP4 with a transcript
    _audio_only(folder / "radio.mp4")
    (folder / "radio.srt").write_text("1\n00:00:00,000 --> 00:00:02,000\nA lecture without images.\n")

    report = run_video([folder], tmp_path / "pairs", VideoConfig(min_stable_s=1.5, lead_s=0.5, lag_s=0.5))
    rows = {r["video_id"]: r for r in report.rows}
    assert rows["good"]["status"] == "ok" and rows["good"]["pairs"] == 3
    errors = {k: r["error"] for k, r in rows.items() if r["status"] == "error"}
    assert set(errors) == {"truncated", "garbage", "silent", "broken_times", "backwards", "radio"}
    assert "corrupt" in errors["truncated"] and "corrupt" in errors["garbage"]
    assert "no audio and no transcript" in errors["silent"]
    assert "unreadable timing line" in errors["broken_times"]
    assert "ends (2.000s) before it starts (5.000s)" in errors["backwards"]
    assert "no video stream" in errors["radio"]
    # the rows are stored, the dataset holds the good video's pairs and lists the failures
    stored = pq.read_table(tmp_path / "pairs" / "video-work" / "videos.parquet").to_pylist()
    assert sorted(r["video_id"] for r in stored if r["status"] == "error") == sorted(errors)
    listed = json.loads((tmp_path / "pairs" / "video" / "errors.json").read_text())
    assert {e["video_id"] for e in listed} == set(errors)
    assert report.summary["pairs"] == 3 and report.summary["failed"] == 6


def test_only_bad_videos_write_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pathgen.cli import app

    (tmp_path / "bad.mp4").write_bytes(b"garbage" * 50)
    result = CliRunner().invoke(app, ["video", str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "pairs")])
    assert result.exit_code == 1
    assert "no pair was made" in result.output
    assert not (tmp_path / "pairs" / "video").exists()
    assert not (tmp_path / "pairs" / "mix.yaml").exists()
    rows = pq.read_table(tmp_path / "pairs" / "video-work" / "videos.parquet").to_pylist()
    assert rows[0]["status"] == "error" and "corrupt" in rows[0]["error"]


def test_bad_configuration_fails_before_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pathgen.cli import app

    (tmp_path / "a.mp4").write_bytes(b"x")
    for args, message in [
        (["--classifier", "magic"], "unknown frame classifier"),
        (["--classifier", f"head:{tmp_path / 'none.safetensors'}"], "classifier head not found"),
        (["--speech", "whisper"], "unknown speech model"),
        (["--llm", "gpt"], "--llm needs --base-url"),
        (["--vocabulary", str(tmp_path / "none.txt")], "vocabulary file not found"),
    ]:
        result = CliRunner().invoke(
            app, ["video", str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"), *args]
        )
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (tmp_path / "o").exists()
