"""The ASR path (tiny random Whisper built in code) and LLM cleaning through the engine + journal."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from pathgen.config import VideoConfig
from pathgen.engine.fakeserver import FakeServer
from pathgen.video.stage import run_video
from pathgen.video.synth import tone_speech, write_video


def test_asr_path_end_to_end_with_tiny_whisper(lecture, tmp_path: Path) -> None:
    """No sidecar: audio decoded by PyAV at 16 kHz, transcribed with timestamps, pairs flagged garbage."""
    from pathgen.video.decode import read_audio

    scenes = [s for s in lecture.scenes if s.histology][:2]
    seconds = sum(s.seconds for s in scenes)
    video = write_video(
        tmp_path / "narrated.mp4", scenes, fps=4, audio=tone_speech(seconds, 22050), sample_rate=22050
    )
    audio = read_audio(video)
    assert audio.dtype == np.float32 and abs(len(audio) / 16000 - seconds) < 0.2  # resampled to 16 kHz
    cfg = VideoConfig(min_stable_s=1.5, lead_s=0.5, lag_s=0.5, speech="tiny")
    report = run_video([video], tmp_path / "pairs", cfg)
    row = report.rows[0]
    assert row["status"] == "ok", row["error"]
    assert row["transcript_source"] == "asr:tiny" and row["asr_untrained"] and row["segments"] >= 1
    assert report.summary["asr_untrained"] and "UNTRAINED" in report.summary["warning"]
    stored = json.loads(
        (tmp_path / "pairs" / "video-work" / "videos" / "narrated" / "video.json").read_text()
    )
    for seg in stored["segments"]:
        assert 0.0 <= seg["start"] <= seg["end"] <= seconds + 0.1 and seg["text"].strip()
    assert row["kept_frames"] == 2 and report.pairs >= 1  # seeded model: the same garbage every run
    card = (tmp_path / "pairs" / "video" / "README.md").read_text()
    assert "UNTRAINED" in card and "TINY RANDOM" in card  # the dataset says its text is garbage
    from pathgen.export.shards import iter_tar_samples

    for _, fields in iter_tar_samples(tmp_path / "pairs" / "video" / "shards" / "00000.tar"):
        meta = json.loads(fields["json"])
        assert json.loads(meta["flags"]) == ["asr_untrained", "offline_demo"]
        assert meta["transcript_source"] == "asr:tiny" and meta["caption"].strip()


def test_llm_cleaning_is_journalled_and_resumed(lecture, tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copy(lecture.path, folder / "lecture.mp4")
    shutil.copy(lecture.path.with_suffix(".srt"), folder / "lecture.srt")
    with FakeServer() as server:
        cfg = VideoConfig(min_stable_s=1.5, lead_s=0.5, lag_s=0.5, llm="fake", base_url=[server.base_url])
        report = run_video([folder], tmp_path / "pairs", cfg)
        calls = len(server.completed("clean"))
        assert calls == len(lecture.scenes)  # one call per chunk (one sentence per screen)
        info = report.summary["text_cleaning"]
        assert info["llm_calls_answered"] == calls and info["rules_fallback"] == 0
        again = run_video([folder], tmp_path / "pairs", cfg)
        assert len(server.completed("clean")) == calls  # everything came from the journal
        assert again.summary["text_cleaning"]["from_journal"] == calls
    db = sqlite3.connect(tmp_path / "pairs" / "video-work" / "journal.sqlite")
    rows = db.execute("SELECT tile_id, agent, status FROM calls ORDER BY tile_id").fetchall()
    assert len(rows) == calls and {(a, s) for _, a, s in rows} == {("clean", "ok")}
    assert rows[0][0] == "video:lecture:0"
    metas = []
    from pathgen.export.shards import iter_tar_samples

    for _, fields in iter_tar_samples(tmp_path / "pairs" / "video" / "shards" / "00000.tar"):
        metas.append(json.loads(fields["json"]))
    assert len(metas) == 3
    for meta in metas:
        assert meta["cleaned_by"] == "llm:fake"
        assert meta["models"]["clean"] == "fake"
        keywords = json.loads(meta["keywords"])
        assert keywords and all(k in meta["caption"].lower() for k in keywords)  # validated terms only
    lym = next(m for m in metas if "lymphocytes" in m["caption"])
    assert lym["roi_text"] == lym["caption"]  # "This area ..." points at the screen
