"""One video, from file to candidate frames and transcript segments, cached in its work folder.

This is the executor's item: module-level, picklable arguments, one video per call. It writes
``WORK/videos/<id>/video.json`` (atomically, last) and the kept frames as JPEGs beside it; the
JSON's fingerprint (the file's size and mtime, the sidecar's, the settings that change frames or
segments) lets a re-run skip a video whose result is still right. Any problem of the video itself
raises, and the stage turns it into the video's error row: a corrupt file or one without a video
stream (:class:`VideoError`), no audio and no transcript, no frame decoded, a sidecar with broken
timestamps (:class:`TranscriptError`).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pathgen.rundir import atomic_write, file_identity, fingerprint, write_json
from pathgen.video.decode import VideoError, iter_frames, probe, read_audio
from pathgen.video.shots import ShotDetector, shots_from_cuts
from pathgen.video.stable import StableRuns
from pathgen.video.transcript import Segment, TranscriptError, read_transcript

#: Settings that change what :func:`analyse_video` produces (the rest act later, on cached results).
ANALYSIS_KEYS = (
    "sample_fps",
    "shot_threshold",
    "min_shot_s",
    "stable_ssim",
    "stable_crops",
    "stable_crop_size",
    "min_stable_s",
    "analysis_side",
    "classifier",
    "histology_threshold",
    "colour_min_fraction",
    "dedup_bits",
    "crop",
    "crop_min_gain",
    "max_side",
    "speech",
    "language",
    "jpeg_quality",
)
RESULT = "video.json"
VERSION = 1
_CLASSIFIERS: dict[tuple[str, float], Any] = {}


@dataclass
class VideoJob:
    path: str
    video_id: str
    work: str
    sidecar: str | None
    settings: dict[str, Any]

    def fingerprint(self) -> str:
        head = self.settings.get("classifier", "")
        head_id = file_identity(head[5:]) if head.startswith("head:") else None
        return fingerprint(
            VERSION,
            file_identity(self.path),
            file_identity(self.sidecar) if self.sidecar else None,
            {k: self.settings.get(k) for k in ANALYSIS_KEYS},
            head_id,
        )


def cached(job: VideoJob) -> dict[str, Any] | None:
    """The stored result of ``job`` when it is complete and made from the same inputs and settings."""
    path = Path(job.work) / RESULT
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if result.get("fingerprint") == job.fingerprint() else None


def _classifier(spec: str, min_fraction: float) -> Any:
    from pathgen.video.classify import load_classifier

    key = (spec, min_fraction)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = load_classifier(spec, min_fraction)
    return _CLASSIFIERS[key]


def transcript_of(job: VideoJob, has_audio: bool, duration: float) -> tuple[list[Segment], str, bool]:
    """Segments, where they came from, and whether they come from an untrained model."""
    s = job.settings
    if job.sidecar:
        segments = read_transcript(Path(job.sidecar))
        late = [seg for seg in segments if duration and seg.start > duration + 1.0]
        if late:
            raise TranscriptError(
                f"{Path(job.sidecar).name}: {len(late)} cue(s) start after the video ends "
                f"({late[0].start:.1f}s > {duration:.1f}s): broken or mismatched timestamps"
            )
        return segments, f"sidecar:{Path(job.sidecar).suffix.lstrip('.')}", False
    if not has_audio:
        raise VideoError("no audio and no transcript (.vtt/.srt sidecar)")
    if not s.get("speech"):
        raise VideoError(
            "no transcript sidecar (.vtt/.srt) and no speech model configured (--speech hf:<Whisper dir>)"
        )
    from pathgen.video.asr import transcribe, untrained

    audio = read_audio(Path(job.path))
    if audio.size == 0:
        raise VideoError("the audio stream holds no samples and there is no transcript")
    return transcribe(audio, s["speech"], s.get("language")), f"asr:{s['speech']}", untrained(s["speech"])


def analyse_video(job: VideoJob) -> dict[str, Any]:
    """Analyse one video (or return its cached result); raises for the video's error row."""
    done = cached(job)
    if done is not None:
        return {**done, "resumed": True}
    s = job.settings
    work = Path(job.work)
    info = probe(Path(job.path))
    if not info.has_video:
        raise VideoError("no video stream")
    segments, source, untrained = transcript_of(job, info.has_audio, info.duration)
    frames = _frames(job, work)
    duration = max(info.duration, frames["last_t"])
    shots = shots_from_cuts(frames["cuts"], duration + 1.0 / s["sample_fps"])
    for f in frames["frames"]:
        shot = shots[f["shot"]] if f["shot"] < len(shots) else shots[-1]
        f["shot_start"], f["shot_end"] = shot.start, min(shot.end, duration + 1.0 / s["sample_fps"])
    result = {
        "fingerprint": job.fingerprint(),
        "video_id": job.video_id,
        "path": job.path,
        "duration": duration,
        "width": info.width,
        "height": info.height,
        "transcript_source": source,
        "asr_untrained": untrained,
        "segments": [asdict(seg) for seg in segments],
        "shots": len(shots),
        "sampled": frames["sampled"],
        "frames": frames["frames"],
        "classifier": frames["classifier"],
    }
    write_json(work / RESULT, result)
    return {**result, "resumed": False}


def _frames(job: VideoJob, work: Path) -> dict[str, Any]:
    from pathgen.export.dedup import dhash, hamming
    from pathgen.video.crop import crop_slide_area

    s = job.settings
    clf = _classifier(s["classifier"], s["colour_min_fraction"])
    detector = ShotDetector(s["shot_threshold"], s["min_shot_s"])
    runs = StableRuns(
        s["stable_ssim"],
        s["min_stable_s"],
        s["stable_crops"],
        s["stable_crop_size"],
        step_s=1.0 / s["sample_fps"],
    )
    frames_dir = work / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for stale in frames_dir.glob("*.jpg"):  # an earlier analysis with other settings
        stale.unlink()
    records: list[dict[str, Any]] = []
    kept_hashes: list[int] = []
    shot = 0
    sampled = 0
    last_t = 0.0

    def consider(run: Any) -> None:
        shot_index = run.shot
        frame = run.median()
        score = float(clf.scores([frame.rgb])[0])
        rec: dict[str, Any] = {
            "t": round(frame.t, 3),
            "run_start": round(run.start, 3),
            "run_end": round(run.end, 3),
            "shot": shot_index,
            "score": round(score, 4),
            "kept": False,
            "box": None,
        }
        if score < s["histology_threshold"]:
            rec["reason"] = "not_histology"
            records.append(rec)
            return
        rgb, box = crop_slide_area(frame.rgb, s["crop_min_gain"]) if s["crop"] else (frame.rgb, None)
        image = Image.fromarray(np.ascontiguousarray(rgb))
        if max(image.size) > s["max_side"]:
            image.thumbnail((s["max_side"], s["max_side"]), Image.Resampling.LANCZOS)
        h = dhash(image)
        if any(hamming(h, k) <= s["dedup_bits"] for k in kept_hashes):
            rec["reason"] = "duplicate"
            records.append(rec)
            return
        kept_hashes.append(h)
        name = f"{round(frame.t * 1000):09d}.jpg"
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=s["jpeg_quality"])
        atomic_write(frames_dir / name, buf.getvalue())
        rec.update(
            kept=True,
            reason="kept",
            box=list(box) if box else None,
            file=name,
            width=image.width,
            height=image.height,
        )
        records.append(rec)

    for frame in iter_frames(Path(job.path), s["sample_fps"], s["analysis_side"], max_side=2 * s["max_side"]):
        sampled += 1
        last_t = frame.t
        cut = detector.update(frame.t, frame.small)
        if cut:
            shot += 1
        finished = runs.update(frame, cut, shot)
        if finished is not None:
            consider(finished)
    finished = runs.flush()
    if finished is not None:
        consider(finished)
    if sampled == 0:
        raise VideoError("no frames decoded")
    return {
        "frames": records,
        "cuts": detector.cuts,
        "sampled": sampled,
        "last_t": last_t,
        "classifier": clf.name,
    }
