"""``pathgen video``: a folder of narrated videos -> image-text pairs as a pathgen dataset.

Layout (``OUT`` is a pairs root, as for ``pathgen ingest``)::

    OUT/NAME/          the dataset (shards with source=NAME, index.parquet, card, gallery, report.json,
                       errors.json): what ``pathgen train`` and ``ingest --against`` read
    OUT/NAME-work/     per-video work: videos/<id>/video.json + frames/*.jpg (the resume point),
                       journal.sqlite (LLM cleaning calls), videos.parquet (one row per video,
                       errors included) and report.json
    OUT/mix.yaml       the mixing manifest, refreshed to list NAME beside the other sets

Steps: per video (the executor's items, resumable) transcript + frames (:mod:`.analyse`); then for
all chunks at once, cleaning by the LLM (engine + journal, resumable per chunk) or by rules; then
alignment and the dataset, written whole beside the old one and swapped in (the pairs of every
video are re-assembled from the cached frames, so shards of unchanged videos are kept as they were).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathgen.config import VideoConfig
from pathgen.rundir import write_json, write_parquet
from pathgen.video.analyse import VideoJob, analyse_video, cached
from pathgen.video.text import Chunk, Cleaned, Vocabulary, chunk_segments, clean_rules
from pathgen.video.transcript import Segment, find_sidecar

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Video files named or found (recursively) in folders, in a stable order."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"video input not found: {p}")
    seen: dict[Path, None] = {}
    for p in found:
        seen.setdefault(p.resolve(), None)
    return list(seen)


def video_ids(paths: Sequence[Path]) -> list[str]:
    """Readable, stable ids: the sanitised file stem, plus a path hash when two stems collide."""
    from pathgen.export.shards import safe_key

    stems = [safe_key(p.stem) for p in paths]
    counts = Counter(stems)
    return [
        s if counts[s] == 1 else f"{s}_{hashlib.sha1(str(p).encode()).hexdigest()[:6]}"
        for s, p in zip(stems, paths, strict=True)
    ]


def check_config(cfg: VideoConfig) -> Vocabulary:
    """Fail before any work on settings that cannot work; returns the vocabulary."""
    from pathgen.video.classify import CLASSIFIER_FORMS

    spec = cfg.classifier
    if spec.startswith("head:"):
        if not Path(spec[5:]).expanduser().is_file():
            raise FileNotFoundError(
                f"classifier head not found: {spec[5:]} (train one: pathgen video train-classifier)"
            )
    elif spec != "colour" and not (spec.startswith("zeroshot:") and spec[9:]):
        raise ValueError(f"unknown frame classifier {spec!r}; valid forms: {CLASSIFIER_FORMS}")
    if cfg.speech:
        from pathgen.video.asr import check_speech_spec

        check_speech_spec(cfg.speech)
    if cfg.llm and not cfg.base_url:
        raise ValueError(
            "--llm needs --base-url (an OpenAI-compatible server); without --llm, rules clean the text"
        )
    return Vocabulary.load(cfg.vocabulary)


@dataclass
class VideoReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    pairs: int = 0
    written: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


def _row(job: VideoJob, result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    frames = (result or {}).get("frames", [])
    reasons = Counter(f["reason"] for f in frames)
    return {
        "video_id": job.video_id,
        "path": job.path,
        "status": "error" if error else "ok",
        "error": error,
        "resumed": bool((result or {}).get("resumed")),
        "transcript_source": (result or {}).get("transcript_source"),
        "asr_untrained": bool((result or {}).get("asr_untrained")),
        "duration_s": float((result or {}).get("duration") or 0.0),
        "segments": len((result or {}).get("segments", [])),
        "chunks": 0,
        "shots": int((result or {}).get("shots") or 0),
        "sampled_frames": int((result or {}).get("sampled") or 0),
        "stable_clips": len(frames),
        "not_histology": reasons.get("not_histology", 0),
        "duplicates": reasons.get("duplicate", 0),
        "kept_frames": reasons.get("kept", 0),
        "pairs": 0,
        "no_text_frames": 0,
    }


def run_video(
    inputs: Sequence[str | Path],
    out_root: Path,
    cfg: VideoConfig,
    *,
    name: str = "video",
    executor: Any = None,
    weight: float = 1.0,
) -> VideoReport:
    """The whole stage (see the module docstring); returns per-video rows and the counts."""
    from pathgen.executors.base import Resources
    from pathgen.executors.local import LocalExecutor
    from pathgen.export.shards import safe_key

    vocab = check_config(cfg)
    name = safe_key(name)
    videos = find_videos(inputs)
    if not videos:
        raise FileNotFoundError(
            f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, inputs))}"
        )
    out_root = Path(out_root)
    work = out_root / f"{name}-work"
    settings = cfg.model_dump(mode="json")
    jobs = []
    for path, vid in zip(videos, video_ids(videos), strict=True):
        side = find_sidecar(path)
        jobs.append(
            VideoJob(str(path), vid, str(work / "videos" / vid), str(side) if side else None, settings)
        )
    results: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    todo = [i for i, job in enumerate(jobs) if cached(job) is None]
    for i, job in enumerate(jobs):
        if i not in todo:
            results[i] = {**(cached(job) or {}), "resumed": True}
    executor = executor or LocalExecutor()
    for res in executor.map(
        analyse_video,
        [jobs[i] for i in todo],
        label="videos",
        workers=cfg.workers,
        resources=Resources(mode="process"),
        describe=lambda job, r: job.video_id,
    ):
        i = todo[res.index]
        if res.ok:
            results[i] = res.value  # type: ignore[assignment]
        else:
            errors[i] = res.error or "failed"
    rows = {i: _row(job, results.get(i), errors.get(i)) for i, job in enumerate(jobs)}
    chunks: dict[int, list[Chunk]] = {}
    for i, result in results.items():
        segs = [Segment(**s) for s in result["segments"]]
        chunks[i] = chunk_segments(segs, cfg.pause_s, cfg.max_chunk_s)
        rows[i]["chunks"] = len(chunks[i])
    cleaned, clean_info = clean_all(jobs, chunks, cfg, vocab, work)
    pairs = build_pairs(jobs, results, chunks, cleaned, cfg, name, rows)
    report = write_outputs(out_root, name, work, jobs, rows, pairs, cfg, vocab, clean_info, weight)
    return report


def clean_all(
    jobs: Sequence[VideoJob], chunks: dict[int, list[Chunk]], cfg: VideoConfig, vocab: Vocabulary, work: Path
) -> tuple[dict[tuple[int, int], Cleaned], dict[str, Any]]:
    """Every chunk cleaned: by the LLM (journalled) when one is configured, else by rules."""
    items = [(i, c) for i in sorted(chunks) for c in chunks[i]]
    if not cfg.llm:
        done = {(i, c.index): clean_rules(c.text, vocab) for i, c in items}
        return done, {"by": "rules", "note": "no LLM configured: rule-based cleaning (fillers, vocabulary)"}
    from pathgen.video.clean_llm import clean_with_llm

    keyed = [(f"video:{jobs[i].video_id}:{c.index}", c) for i, c in items]
    out, info = clean_with_llm(keyed, cfg, vocab, work / "journal.sqlite")
    return {(i, c.index): out[k] for (i, c), (k, _) in zip(items, keyed, strict=True)}, info


def build_pairs(
    jobs: Sequence[VideoJob],
    results: dict[int, dict[str, Any]],
    chunks: dict[int, list[Chunk]],
    cleaned: dict[tuple[int, int], Cleaned],
    cfg: VideoConfig,
    name: str,
    rows: dict[int, dict[str, Any]],
) -> list[Any]:
    """Pairs of every analysed video (frame JPEG + its window's text), in video then time order."""
    from pathgen.export.shards import safe_key
    from pathgen.export.writer import Pair
    from pathgen.video.align import pair_text, windows

    pairs = []
    for i in sorted(results):
        result, job = results[i], jobs[i]
        kept = sorted((f for f in result["frames"] if f["kept"]), key=lambda f: f["t"])
        wins = windows(kept, result["duration"], cfg.lead_s, cfg.lag_s)
        by_index = {c.index: cleaned[(i, c.index)] for c in chunks[i] if (i, c.index) in cleaned}
        untrained = bool(result.get("asr_untrained"))
        for frame, win in zip(kept, wins, strict=True):
            text = pair_text(win, chunks[i], by_index, cfg.min_overlap)
            if text is None or not text["caption"].strip():
                rows[i]["no_text_frames"] += 1
                continue
            jpeg = (Path(job.work) / "frames" / frame["file"]).read_bytes()
            flags = ["asr_untrained", "offline_demo"] if untrained else []
            meta = {
                "key": f"{safe_key(job.video_id)}_{round(frame['t'] * 1000):09d}",
                "source": name,
                "wsi_id": job.video_id,
                "video_id": job.video_id,
                "video_path": job.path,
                "t": frame["t"],
                "on_screen_start": round(win.on, 3),
                "on_screen_end": round(win.off, 3),
                "window_start": round(win.start, 3),
                "window_end": round(win.end, 3),
                "text_start": round(text["text_start"], 3),
                "text_end": round(text["text_end"], 3),
                "histology_score": frame["score"],
                "time_share": text["time_share"],
                "confidence": round(frame["score"] * text["time_share"], 4),
                "caption": " ".join(text["caption"].split()),
                "medical_text": text["medical_text"],
                "roi_text": text["roi_text"],
                "corrected_text": text["corrected_text"],
                "noisy_text": text["noisy_text"],
                "keywords": text["keywords"],
                "concept_ids": text["concept_ids"],
                "transcript_source": result["transcript_source"],
                "cleaned_by": ",".join(text["cleaned_by"]),
                "crop_box": frame["box"] or [],
                "width": frame["width"],
                "height": frame["height"],
                "status": "ok",
                "flags": flags,
                "models": {
                    "asr": result["transcript_source"],
                    "clean": cfg.llm or "rules",
                    "classifier": result.get("classifier", cfg.classifier),
                },
            }
            pairs.append(Pair(meta=meta, jpeg=jpeg))
            rows[i]["pairs"] += 1
    return pairs


VIDEO_COLUMNS = (
    ("video_id", "string"),
    ("path", "string"),
    ("status", "string"),
    ("error", "string"),
    ("resumed", "bool_"),
    ("transcript_source", "string"),
    ("asr_untrained", "bool_"),
    ("duration_s", "float64"),
    ("segments", "int64"),
    ("chunks", "int64"),
    ("shots", "int64"),
    ("sampled_frames", "int64"),
    ("stable_clips", "int64"),
    ("not_histology", "int64"),
    ("duplicates", "int64"),
    ("kept_frames", "int64"),
    ("pairs", "int64"),
    ("no_text_frames", "int64"),
)


def write_outputs(
    out_root: Path,
    name: str,
    work: Path,
    jobs: Sequence[VideoJob],
    rows: dict[int, dict[str, Any]],
    pairs: list[Any],
    cfg: VideoConfig,
    vocab: Vocabulary,
    clean_info: dict[str, Any],
    weight: float,
) -> VideoReport:
    import pyarrow as pa

    from pathgen.export.dataset import staged_dataset, write_dataset
    from pathgen.export.mixing import refresh_manifest

    ordered = [rows[i] for i in range(len(jobs))]
    schema = pa.schema([(c, getattr(pa, t)()) for c, t in VIDEO_COLUMNS])
    write_parquet(pa.Table.from_pylist(ordered, schema=schema), work / "videos.parquet")
    failed = [r for r in ordered if r["status"] == "error"]
    untrained = any(r["asr_untrained"] for r in ordered if r["status"] == "ok")
    summary: dict[str, Any] = {
        "source": name,
        "videos": len(ordered),
        "done": sum(r["status"] == "ok" for r in ordered),
        "failed": len(failed),
        "resumed": sum(r["resumed"] for r in ordered),
        "pairs": len(pairs),
        "kept_frames": sum(r["kept_frames"] for r in ordered),
        "text_cleaning": clean_info,
        "classifier": cfg.classifier,
        "vocabulary": vocab.source,
        "asr_untrained": untrained,
        "errors": [{"video_id": r["video_id"], "path": r["path"], "error": r["error"]} for r in failed],
    }
    if untrained:
        summary["warning"] = (
            "transcripts come from an UNTRAINED tiny speech model: their text is garbage; "
            "use a real Whisper (--speech hf:DIR) before training on these pairs"
        )
    report = VideoReport(rows=ordered, pairs=len(pairs), summary=summary)
    out = out_root / name
    if pairs:
        extra = {
            "made by": "pathgen video (Quilt-style curation of narrated videos)",
            "videos": f"{summary['done']} processed, {summary['failed']} failed (report.json, errors.json)",
            "frame classifier": cfg.classifier,
            "text cleaning": clean_info.get("note") or clean_info.get("by"),
            "vocabulary": vocab.source,
        }
        if untrained:
            extra["WARNING"] = summary["warning"]
        with staged_dataset(out) as staging:
            written = write_dataset(
                out,
                pairs,
                title=f"pathgen video: {name}",
                per_shard=cfg.samples_per_shard,
                quality=cfg.jpeg_quality,
                expected=len(pairs),
                extra=extra,
                into=staging,
                skipped=lambda: {k: v for k, v in _skips(ordered).items() if v},
            )
            summary.update(written, written=True)
            write_json(staging / "report.json", summary)
            write_json(staging / "errors.json", summary["errors"])
        manifest = refresh_manifest(out_root, weights={name: weight})
        summary["manifest"] = str(manifest) if manifest else None
        report.written = True
    else:
        summary.update(written=False, manifest=None)
    write_json(work / "report.json", summary)
    return report


def _skips(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {
        "video_error": sum(r["status"] == "error" for r in rows),
        "frame_not_histology": sum(r["not_histology"] for r in rows),
        "frame_duplicate": sum(r["duplicates"] for r in rows),
        "frame_without_text": sum(r["no_text_frames"] for r in rows),
    }
