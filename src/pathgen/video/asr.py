"""Speech recognition with timestamps, for videos without a sidecar transcript.

One spec names the model (``VideoConfig.speech``):

- ``hf:DIR_OR_ID``: a Whisper checkpoint through transformers' ASR pipeline with
  ``return_timestamps=True`` and 30-s chunks (Whisper's window), so long lectures are transcribed
  in pieces with segment times;
- ``faster-whisper:NAME_OR_DIR``: CTranslate2's faster-whisper, when installed (several times
  faster on CPU; pathgen does not require it);
- ``tiny``: a tiny Whisper with random weights built in code (tests, smoke runs). Its text is
  garbage: every segment and pair it produces is flagged ``asr_untrained`` and the card says so.

Audio comes from PyAV at 16 kHz mono (:func:`pathgen.video.decode.read_audio`). Loaded pipelines
are cached per process: a folder of videos loads the model once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.video.decode import SPEECH_RATE
from pathgen.video.transcript import Segment

SPEECH_FORMS = "'hf:<Whisper dir or hub id>', 'faster-whisper:<name or dir>', 'tiny'"
_CACHE: dict[str, Any] = {}


def check_speech_spec(spec: str) -> None:
    if spec == "tiny" or (spec.startswith(("hf:", "faster-whisper:")) and spec.split(":", 1)[1]):
        if spec.startswith("faster-whisper:"):
            try:
                import faster_whisper  # noqa: F401
            except ImportError as exc:
                raise ValueError(
                    "speech model 'faster-whisper:…' needs the faster-whisper package (not installed); "
                    "use 'hf:<Whisper dir>' with transformers instead"
                ) from exc
        return
    raise ValueError(f"unknown speech model {spec!r}; valid forms: {SPEECH_FORMS}")


def untrained(spec: str) -> bool:
    return spec == "tiny"


def build_tiny_whisper(out: Path, seed: int = 0) -> Path:
    """A tiny random Whisper (model + processor) saved in ``out``: real code paths, garbage text.

    The vocabulary is lower-case letters and a space marker plus Whisper's special and timestamp
    tokens, so its (random) transcripts are readable garbage rather than invalid bytes.
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    out = Path(out)
    if (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file():
        return out
    torch.manual_seed(seed)
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz\u0120.")}
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|en|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    for s in specials:
        vocab[s] = len(vocab)
    tok = WhisperTokenizer(vocab=vocab, merges=[])
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    tok.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    ids = dict(zip(specials, tok.convert_tokens_to_ids(specials), strict=True))
    eot = ids["<|endoftext|>"]
    cfg = WhisperConfig(
        vocab_size=len(tok),
        num_mel_bins=80,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=16,
        max_source_positions=1500,
        max_target_positions=128,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        max_initial_timestamp_index=50,
        is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        max_length=128,
        begin_suppress_tokens=[eot],
        suppress_tokens=[],
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok
    ).save_pretrained(out)
    (out / "PATHGEN_TINY.json").write_text(json.dumps({"untrained": True, "seed": seed}) + "\n")
    return out


def _hf_pipeline(source: str) -> Any:
    import logging

    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return pipeline("automatic-speech-recognition", model=source, device="cpu")


def _loaded(spec: str) -> Any:
    if spec not in _CACHE:
        if spec == "tiny":
            folder = Path(tempfile.gettempdir()) / "pathgen-tiny-whisper-v1"
            _CACHE[spec] = ("hf", _hf_pipeline(str(build_tiny_whisper(folder))))
        elif spec.startswith("hf:"):
            _CACHE[spec] = ("hf", _hf_pipeline(spec[3:]))
        elif spec.startswith("faster-whisper:"):
            from faster_whisper import WhisperModel

            _CACHE[spec] = ("fw", WhisperModel(spec.split(":", 1)[1], device="auto"))
        else:
            raise ValueError(f"unknown speech model {spec!r}; valid forms: {SPEECH_FORMS}")
    return _CACHE[spec]


def transcribe(
    audio: np.ndarray, spec: str, language: str | None = None, max_new_tokens: int | None = None
) -> list[Segment]:
    """Timed segments of 16 kHz mono ``audio``; times are clamped to the audio's length."""
    duration = len(audio) / SPEECH_RATE
    if duration <= 0:
        return []
    kind, model = _loaded(spec)
    segments: list[Segment] = []
    if kind == "fw":
        parts, _ = model.transcribe(audio, language=language)
        raw = [(p.start, p.end, p.text) for p in parts]
    else:
        kwargs: dict[str, Any] = {"task": "transcribe"}
        if language:
            kwargs["language"] = language
        if spec == "tiny":
            kwargs.update(language="en", max_new_tokens=max_new_tokens or 24)
        elif max_new_tokens:
            kwargs["max_new_tokens"] = max_new_tokens
        out = model(
            {"raw": audio, "sampling_rate": SPEECH_RATE},
            return_timestamps=True,
            chunk_length_s=30,
            generate_kwargs=kwargs,
        )
        raw = [(c["timestamp"][0], c["timestamp"][1], c["text"]) for c in out.get("chunks") or []]
        if not raw and out.get("text", "").strip():
            raw = [(0.0, duration, out["text"])]
    for start, end, text in raw:
        start = min(max(0.0, float(start or 0.0)), duration)
        end = min(float(end) if end is not None else duration, duration)
        text = " ".join(str(text).split())
        if text and end >= start:
            segments.append(Segment(start, max(end, start), text))
    return segments
