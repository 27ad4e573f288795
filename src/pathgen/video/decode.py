"""Reading videos with PyAV: a probe, sampled RGB frames with their times, and 16 kHz mono audio.

Why PyAV: it binds FFmpeg's libraries directly (decode, scale, resample) with no subprocess and no
temporary files, frames come out as numpy arrays, and it installs as a wheel with its own FFmpeg.
Frames are sampled at ``fps`` (a lecture changes screens in seconds, not frames) and scaled by
FFmpeg's swscale, which is far cheaper than resizing in Python. Decoding uses FFmpeg's frame
threads (``thread_type = "AUTO"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPEECH_RATE = 16000  # Whisper's sampling rate


class VideoError(Exception):
    """A video that cannot be used (corrupt, no video stream, no frames): the video's error row."""


@dataclass
class Probe:
    duration: float
    width: int
    height: int
    fps: float
    has_audio: bool
    has_video: bool


def probe(path: Path) -> Probe:
    import av

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            duration = float(container.duration / 1_000_000) if container.duration else 0.0
            if video is not None and not duration and video.duration and video.time_base:
                duration = float(video.duration * video.time_base)
            rate = float(video.average_rate) if video is not None and video.average_rate else 0.0
            return Probe(
                duration=duration,
                width=video.codec_context.width if video is not None else 0,
                height=video.codec_context.height if video is not None else 0,
                fps=rate,
                has_audio=bool(container.streams.audio),
                has_video=video is not None,
            )
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise VideoError(f"corrupt or unreadable video: {exc}") from exc


@dataclass
class Frame:
    """A sampled frame: its time (s), the full-resolution RGB and a small copy for analysis."""

    index: int
    t: float
    rgb: np.ndarray
    small: np.ndarray


def _small_size(width: int, height: int, side: int) -> tuple[int, int]:
    scale = side / max(width, height)
    if scale >= 1:
        return width - width % 2, height - height % 2
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def iter_frames(
    path: Path, fps: float, small_side: int = 256, full: bool = True, max_side: int | None = None
) -> Iterator[Frame]:
    """Frames every ``1/fps`` seconds (the first frame at or after each sample time).

    ``full=False`` skips the full-resolution array (``rgb`` is the small one): for decoding-only
    measurements. ``max_side`` caps the full-resolution side (a 4K screencast need not be kept at 4K).
    Raises :class:`VideoError` when the file cannot be decoded at all.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise VideoError(f"corrupt or unreadable video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise VideoError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        step = 1.0 / fps
        next_t = 0.0
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time)
                if t + 1e-6 < next_t:
                    continue
                next_t = max(next_t + step, t + step * 0.5)
                sw, sh = _small_size(frame.width, frame.height, small_side)
                small = frame.reformat(width=sw, height=sh, format="rgb24").to_ndarray()
                if full:
                    if max_side and max(frame.width, frame.height) > max_side:
                        fw, fh = _small_size(frame.width, frame.height, max_side)
                        rgb = frame.reformat(width=fw, height=fh, format="rgb24").to_ndarray()
                    else:
                        rgb = frame.to_ndarray(format="rgb24")
                else:
                    rgb = small
                yield Frame(index, t, rgb, small)
                index += 1
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            if index == 0:
                raise VideoError(f"corrupt video: {exc}") from exc
            # A truncated tail: keep what decoded (a lecture cut short is still a lecture).


def read_audio(path: Path, rate: int = SPEECH_RATE) -> np.ndarray:
    """The first audio stream as mono float32 at ``rate`` Hz (FFmpeg's resampler does the work)."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise VideoError(f"corrupt or unreadable video: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise VideoError("no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts: list[np.ndarray] = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            if not parts:
                raise VideoError(f"corrupt audio: {exc}") from exc
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
