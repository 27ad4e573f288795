"""Fixtures of the video tests: a lecture MP4 with its .srt, and a folder of labelled frames."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from video_testkit import Lecture, lecture_scenes, non_histology_images


@pytest.fixture(scope="session")
def lecture(tmp_path_factory, crc_patches: Path) -> Lecture:
    from pathgen.video.synth import write_srt, write_video

    folder = tmp_path_factory.mktemp("lecture")
    scenes = lecture_scenes(crc_patches)
    path = write_video(folder / "colon_lecture.mp4", scenes, fps=4)
    write_srt(folder / "colon_lecture.srt", scenes)
    return Lecture(path, scenes)


@pytest.fixture(scope="session")
def labelled_frames(tmp_path_factory, crc_patches: Path, unlabeled_patches: Path) -> Path:
    """histology/: the 32 real CRC patches + crops of the unlabelled H&E images; other/: rendered screens."""
    root = tmp_path_factory.mktemp("frames")
    (root / "histology").mkdir()
    (root / "other").mkdir()
    for p in sorted(crc_patches.rglob("*.png")):
        Image.open(p).convert("RGB").save(root / "histology" / f"{p.stem}.png")
    for p in sorted(unlabeled_patches.iterdir()):
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            for k, (x, y) in enumerate([(0, 0), (w // 2, h // 2)]):
                im.crop((x, y, min(w, x + 224), min(h, y + 224))).save(
                    root / "histology" / f"{p.stem}_{k}.png"
                )
    for i, im in enumerate(non_histology_images(36)):
        im.save(root / "other" / f"screen_{i:02d}.png")
    return root
