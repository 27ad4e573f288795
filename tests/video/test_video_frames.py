"""Frame selection on real decoded video: shot cuts, stable clips vs motion, slide-area crop, dedup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from video_testkit import SIZE, patches

from pathgen.config import VideoConfig
from pathgen.video.classify import ColourClassifier
from pathgen.video.crop import slide_box
from pathgen.video.decode import iter_frames
from pathgen.video.shots import ShotDetector
from pathgen.video.stable import StableRuns
from pathgen.video.stage import run_video
from pathgen.video.synth import Scene, desktop_screen, histology_screen, text_screen, write_srt, write_video


def test_shot_cuts_fall_on_screen_changes(lecture) -> None:
    detector = ShotDetector(27.0, 1.0)
    for frame in iter_frames(lecture.path, fps=4, small_side=128):
        detector.update(frame.t, frame.small)
    starts = [a for a, _, _ in lecture.spans()][1:]
    assert detector.cuts == starts


def test_panning_is_not_stable_and_a_still_view_is(crc_patches: Path, tmp_path: Path) -> None:
    """A pan across a large histology view breaks SSIM between frames; the still view after it does not."""
    big = histology_screen(patches(crc_patches, "NORM"), (SIZE[0] * 3, SIZE[1]), seed=5)
    pan = [Scene(big.crop((x, 0, x + SIZE[0], SIZE[1])), 0.25, "", True) for x in range(0, 2 * SIZE[0], 40)]
    still = [Scene(big.crop((2 * SIZE[0], 0, 3 * SIZE[0], SIZE[1])), 3.0, "", True)]
    video = write_video(tmp_path / "pan.mp4", pan + still, fps=4)
    runs, found = StableRuns(0.98, 1.5, step_s=0.25), []
    for frame in iter_frames(video, fps=4, small_side=256):
        done = runs.update(frame, False)
        if done is not None:
            found.append(done)
    last = runs.flush()
    found += [last] if last else []
    pan_end = len(pan) * 0.25
    assert len(found) == 1 and found[0].start >= pan_end - 0.3  # only the still view is a stable clip
    assert abs(found[0].median().t - (pan_end + 1.5)) <= 0.3


def test_picture_in_picture_is_cropped_to_the_slide_area(crc_patches: Path) -> None:
    desk = np.asarray(desktop_screen((640, 400), seed=3)).copy()
    view = np.asarray(histology_screen(patches(crc_patches, "TUM"), (300, 220), seed=1))
    desk[100:320, 250:550] = view  # the slide viewer's window
    box = slide_box(desk)
    assert box is not None
    x0, y0, x1, y1 = box
    # the box holds the whole inset and at most a thin margin (5 % of the frame) of desktop around it
    assert 250 - 32 <= x0 <= 250 and 100 - 20 <= y0 <= 100 and 550 <= x1 <= 550 + 32 and 320 <= y1 <= 320 + 20
    assert (
        slide_box(np.asarray(histology_screen(patches(crc_patches, "TUM"), (320, 224)))) is None
    )  # full view
    clf = ColourClassifier()
    assert clf.scores([desk])[0] > 0.5 and clf.scores([np.asarray(desktop_screen((640, 400), 3))])[0] < 0.1


def test_repeated_view_is_a_duplicate_and_inset_frames_are_cropped(crc_patches: Path, tmp_path: Path) -> None:
    tum = histology_screen(patches(crc_patches, "TUM"), SIZE, seed=1)
    inset = np.asarray(desktop_screen((480, 320), seed=9)).copy()
    inset[40:264, 100:420] = np.asarray(tum)
    scenes = [
        Scene(tum, 3, "Tumour glands of adenocarcinoma.", True),
        Scene(text_screen(["Question"], SIZE), 3, "What is this?", False),
        Scene(tum, 3, "Again the tumour glands.", True),  # the same view: a duplicate
        Scene(Image.fromarray(inset).resize(SIZE), 3, "Here the viewer shows the tumour.", True),
    ]
    video = write_video(tmp_path / "dup.mp4", scenes, fps=4)
    write_srt(tmp_path / "dup.srt", scenes)
    report = run_video([video], tmp_path / "pairs", VideoConfig(min_stable_s=1.5, lead_s=0.5, lag_s=0.5))
    row = report.rows[0]
    assert (row["kept_frames"], row["duplicates"], row["not_histology"]) == (2, 1, 1)
    result = json.loads((tmp_path / "pairs" / "video-work" / "videos" / "dup" / "video.json").read_text())
    kept = [f for f in result["frames"] if f["kept"]]
    assert kept[0]["box"] is None and kept[1]["box"] is not None  # the desktop around the inset is cut
    assert kept[1]["width"] < SIZE[0] and kept[1]["height"] < SIZE[1]


def test_encoder_backed_classifiers_load_and_score(crc_patches: Path, tmp_path: Path) -> None:
    """zeroshot:SPEC and a head on encoder embeddings run on the real loading code (tiny random encoder)."""
    from pathgen.video.classify import load_classifier
    from pathgen.video.head import train_head

    frames = [np.asarray(histology_screen(patches(crc_patches, c), SIZE)) for c in ("TUM", "LYM")]
    frames += [np.asarray(text_screen(["a"], SIZE)), np.asarray(desktop_screen(SIZE, 1))]
    scores = load_classifier("zeroshot:tiny").scores(frames)
    assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()
    head, info = train_head(frames, np.array([1, 1, 0, 0]), encoder="tiny")
    assert info["train_accuracy"] == 1.0  # 4 points in the embedding space are separable
    path = head.save(tmp_path / "h.safetensors")
    loaded = load_classifier(f"head:{path}")
    assert loaded.features == "encoder:tiny"
    assert np.allclose(loaded.scores(frames), head.scores(frames), atol=1e-5)
    assert (loaded.scores(frames)[:2] > 0.5).all() and (loaded.scores(frames)[2:] < 0.5).all()
