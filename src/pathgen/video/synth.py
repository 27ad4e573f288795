"""Videos built from real pixels, for tests and the benchmark: histology frames made from real H&E
patches, interleaved with non-histology screens (a text slide, a desktop-like screen, a solid colour).

Why in the package and not in the tests: the benchmark renders the same kind of lecture at 720p, and
a user can build a smoke-test video from their own patches. Frames are encoded with PyAV (libx264
when the build has it, else MPEG-4), audio (optional) as AAC, so the files are real MP4s that every
decoder reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


@dataclass
class Scene:
    """One screen shown for ``seconds``: an RGB image and what the narrator says meanwhile."""

    image: Image.Image
    seconds: float
    text: str
    histology: bool


def histology_screen(patches: Sequence[Path], size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A microscope-like view: real patches tiled (mirrored, not stretched) over the whole frame."""
    rng = np.random.default_rng(seed)
    w, h = size
    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in patches]
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    th, tw = tiles[0].shape[:2]
    for y in range(0, h, th):
        for x in range(0, w, tw):
            tile = tiles[int(rng.integers(len(tiles)))]
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            if rng.random() < 0.5:
                tile = tile[::-1]
            part = tile[: min(th, h - y), : min(tw, w - x)]
            canvas[y : y + part.shape[0], x : x + part.shape[1]] = part
    return Image.fromarray(canvas)


def text_screen(lines: Iterable[str], size: tuple[int, int]) -> Image.Image:
    """A lecture title slide: dark text on white."""
    w, h = size
    image = Image.new("RGB", size, (250, 250, 248))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, w, max(8, h // 8)], fill=(30, 60, 120))
    y = h // 5
    for line in lines:
        draw.text((w // 12, y), line, fill=(20, 20, 20))
        y += max(12, h // 10)
    return image


def desktop_screen(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A desktop-like screen: a grey background, a taskbar, windows with title bars and text lines."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, (70, 90, 110))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, h - max(6, h // 14), w, h], fill=(35, 35, 40))
    for i in range(3):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x1, y1 = x0 + w // 3, y0 + h // 3
        draw.rectangle([x0, y0, x1, y1], fill=(235, 235, 235), outline=(20, 20, 20))
        draw.rectangle([x0, y0, x1, y0 + max(4, h // 30)], fill=(0, 95, 185))
        for k in range(4):
            ly = y0 + (k + 2) * max(5, h // 25)
            if ly < y1 - 2:
                draw.text((x0 + 4, ly), f"file_{i}_{k}.txt   12 KB", fill=(10, 10, 10))
    return image


def solid_screen(size: tuple[int, int], colour: tuple[int, int, int] = (20, 40, 160)) -> Image.Image:
    return Image.new("RGB", size, colour)


def write_video(
    path: Path,
    scenes: Sequence[Scene],
    *,
    fps: int = 4,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 23,
) -> Path:
    """Encode ``scenes`` (and optional mono float audio in [-1, 1]) as an MP4 with PyAV."""
    import av

    w, h = scenes[0].image.size
    with av.open(str(path), "w") as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "ultrafast"}
        astream = out.add_stream("aac", rate=sample_rate) if audio is not None else None
        index = 0
        for scene in scenes:
            frame_rgb = np.asarray(scene.image.convert("RGB"))
            for _ in range(max(1, round(scene.seconds * fps))):
                frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                index += 1
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None and audio is not None:
            _encode_audio(out, astream, audio, sample_rate)
    return path


def _encode_audio(out: object, stream: object, audio: np.ndarray, sample_rate: int) -> None:
    import av

    samples = np.clip(audio, -1, 1).astype(np.float32)
    step = 1024
    for start in range(0, len(samples), step):
        block = samples[start : start + step]
        if len(block) < step:
            block = np.pad(block, (0, step - len(block)))
        frame = av.AudioFrame.from_ndarray(block[None, :], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):  # type: ignore[attr-defined]
            out.mux(packet)  # type: ignore[attr-defined]
    for packet in stream.encode():  # type: ignore[attr-defined]
        out.mux(packet)  # type: ignore[attr-defined]


def srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def write_srt(path: Path, scenes: Sequence[Scene]) -> Path:
    """The narration of ``scenes`` as SRT cues, one per scene, timed exactly to its screen."""
    t, cues = 0.0, []
    for i, scene in enumerate(scenes, 1):
        if scene.text:
            cues.append(f"{i}\n{srt_time(t)} --> {srt_time(t + scene.seconds)}\n{scene.text}\n")
        t += scene.seconds
    path.write_text("\n".join(cues), encoding="utf-8")
    return path


def tone_speech(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like audio: bursts of harmonic tones with pauses (an ASR model hears voiced sound)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sample_rate) / k for k in range(1, 6))
    envelope = (np.sin(2 * np.pi * 0.5 * t) > -0.3).astype(np.float32)
    noise = rng.normal(0, 0.01, t.shape)
    return (0.3 * voice * envelope + noise).astype(np.float32)
