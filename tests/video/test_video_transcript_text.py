"""Sidecar parsing (SRT, WebVTT as YouTube writes it, broken files), chunking, vocabulary, rule cleaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathgen.video.text import Vocabulary, chunk_segments, clean_rules
from pathgen.video.transcript import Segment, TranscriptError, find_sidecar, parse_cues

SRT = (
    "\ufeff1\r\n00:00:01,000 --> 00:00:03,500\r\nHere we see <i>tumour</i> glands.\r\n\r\n"
    "2\r\n00:00:03,500 --> 00:00:05,000\r\nThe nuclei are &amp; pleomorphic.\r\n\r\n"
    "\r\n3\r\n01:00:00,000 --> 01:00:02,000\r\nOne hour in.\r\n"
)
VTT = """WEBVTT
Kind: captions
Language: en

NOTE produced by a lecture tool

STYLE
::cue { color: white }

00:00.000 --> 00:02.000 align:start position:0%
this is<00:00:00.500><c> a</c><00:00:01.000><c> lymphocyte</c>

00:00:02.000 --> 00:00:04.000 align:start position:0%
this is a lymphocyte
and here a plasma cell

intro
00:00:04.000 --> 00:00:05.5
the end.
"""


def test_srt_with_bom_crlf_markup_and_hours() -> None:
    segs = parse_cues(SRT)
    assert segs == [
        Segment(1.0, 3.5, "Here we see tumour glands."),
        Segment(3.5, 5.0, "The nuclei are & pleomorphic."),
        Segment(3600.0, 3602.0, "One hour in."),
    ]


def test_vtt_headers_settings_inline_times_and_rolling_captions() -> None:
    segs = parse_cues(VTT)
    assert [s.text for s in segs] == ["this is a lymphocyte", "and here a plasma cell", "the end."]
    assert segs[0].start == 0.0 and segs[1].start == 2.0 and segs[2].end == 5.5


@pytest.mark.parametrize(
    "text, message",
    [
        ("1\n00:00:01,000 -> 00:00:02,000\nA single arrow.\n", "has no timing line"),
        ("1\n00:00:aa,000 --> 00:00:02,000\nLetters.\n", "unreadable timing line"),
        ("WEBVTT\n\n00:00:09.000 --> 00:00:02.000\nBackwards.\n", "ends (2.000s) before it starts"),
    ],
)
def test_broken_timestamps_raise(text: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cues(text, "t.srt")


def test_sidecar_lookup(tmp_path: Path) -> None:
    video = tmp_path / "case [1].mp4"
    video.write_bytes(b"")
    assert find_sidecar(video) is None
    (tmp_path / "case [1].en.vtt").write_text("WEBVTT\n")
    assert find_sidecar(video) == tmp_path / "case [1].en.vtt"  # yt-dlp's naming, glob-escaped
    (tmp_path / "case [1].srt").write_text("")
    assert find_sidecar(video) == tmp_path / "case [1].srt"  # the exact name wins


def test_chunks_end_at_sentences_pauses_and_length() -> None:
    segs = [
        Segment(0.0, 1.0, "so here we have"),
        Segment(1.0, 2.0, "a gland."),  # sentence end
        Segment(2.0, 3.0, "and then"),
        Segment(5.0, 6.0, "after a pause"),  # 2-s gap: new chunk
        Segment(6.0, 40.0, "a very long monologue without a full stop"),
        Segment(40.0, 41.0, "ends"),  # would make the chunk longer than max_chunk_s: a new one
    ]
    chunks = chunk_segments(segs, pause_s=1.0, max_chunk_s=30.0)
    assert [(c.start, c.end, c.text) for c in chunks] == [
        (0.0, 2.0, "so here we have a gland."),
        (2.0, 3.0, "and then"),
        (5.0, 6.0, "after a pause"),
        (6.0, 40.0, "a very long monologue without a full stop"),
        (40.0, 41.0, "ends"),
    ]


def test_vocabulary_file_and_rule_cleaning(tmp_path: Path) -> None:
    vocab = Vocabulary.load()
    assert vocab.find("Smooth muscle and H&E, then muscle.") == ["smooth muscle", "h&e", "muscle"]
    assert vocab.validate(["Lymphocytes", "banana", "lymphocytes"]) == ["lymphocytes"]
    cleaned = clean_rules("um so here we see the the lymphocites in the stroma. Thanks for watching.", vocab)
    assert cleaned.corrected == "So here we see the lymphocytes in the stroma. Thanks for watching."
    assert cleaned.medical == ["So here we see the lymphocytes in the stroma."]
    assert cleaned.roi == cleaned.medical  # "here we see" points at the screen
    assert cleaned.keywords == ["lymphocytes", "stroma"] and cleaned.by == "rules"
    own = tmp_path / "umls.txt"
    own.write_text("# my terms\nSignet ring cell\tC0334484\nmucin\tC0026682\n")
    mine = Vocabulary.load(own)
    cleaned = clean_rules("Signet ring cells full of mucin.", mine)
    assert cleaned.keywords == ["mucin"] and cleaned.concept_ids == ["C0026682"]  # whole words only
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no term"):
        Vocabulary.load(tmp_path / "empty.txt")
