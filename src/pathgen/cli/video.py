"""`pathgen video`: narrated videos -> image-text pairs (Quilt-style); `pathgen video train-classifier`."""

from __future__ import annotations

from pathlib import Path

import click
import typer

from pathgen.cli.app import DATA, PipelineOrderGroup, app
from pathgen.cli.common import (
    EXECUTOR_HELP,
    RAY_ADDRESS_HELP,
    console,
    executor_config,
    fail,
    summary_table,
    with_options,
)
from pathgen.cli.defaults import config_default


class VideoGroup(PipelineOrderGroup):
    """`pathgen video FILES...` runs `curate`; `pathgen video train-classifier ...` the other command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["curate", *args]
        return super().parse_args(ctx, args)


video_app = typer.Typer(
    cls=VideoGroup,
    no_args_is_help=True,
    help=(
        "Narrated histopathology videos -> image-text pairs, as Quilt-1M was built: transcript "
        "(.vtt/.srt sidecar or ASR), cleaned text, stable histology frames, alignment.\n\n"
        "`pathgen video VIDEOS_OR_DIR... --out PAIRS` runs `curate`."
    ),
)
app.add_typer(video_app, name="video", rich_help_panel=DATA)


@video_app.command("curate")
def curate(
    videos: list[Path] = typer.Argument(..., help="video files or folders (searched recursively)"),
    out: Path = typer.Option(
        ..., "--out", "-o", help="pairs root: writes OUT/NAME/, OUT/NAME-work/, OUT/mix.yaml"
    ),
    name: str = typer.Option("video", help="set name and `source` tag of the pairs"),
    config: Path | None = typer.Option(None, help="a run config whose `video:` section is the base"),
    classifier: str | None = typer.Option(
        None,
        help=f"colour | head:PATH.safetensors | zeroshot:ENCODER {config_default('video', 'classifier')}",
    ),
    histology_threshold: float | None = typer.Option(
        None, help=f"classifier score of a histology frame {config_default('video', 'histology_threshold')}"
    ),
    speech: str | None = typer.Option(
        None,
        help="ASR without sidecar: hf:WHISPER_DIR | faster-whisper:NAME | tiny (random) \\[default: none]",
    ),
    language: str | None = typer.Option(None, help="ASR language code \\[default: detected]"),
    llm: str | None = typer.Option(
        None, help="text-cleaning LLM served at --base-url \\[default: none: rules]"
    ),
    base_url: list[str] = typer.Option([], help="OpenAI-compatible server(s) of --llm"),
    api_key_env: str | None = typer.Option(None, help="environment variable holding the LLM API key"),
    vocabulary: Path | None = typer.Option(
        None, help="medical vocabulary file (term[TAB]id) \\[default: built-in]"
    ),
    sample_fps: float | None = typer.Option(
        None, help=f"frames analysed per second {config_default('video', 'sample_fps')}"
    ),
    min_stable_s: float | None = typer.Option(
        None, help=f"shortest stable clip in seconds {config_default('video', 'min_stable_s')}"
    ),
    lead_s: float | None = typer.Option(
        None, help=f"text lead before a frame {config_default('video', 'lead_s')}"
    ),
    lag_s: float | None = typer.Option(
        None, help=f"text lag after a frame {config_default('video', 'lag_s')}"
    ),
    workers: int | None = typer.Option(None, help=f"videos at once {config_default('video', 'workers')}"),
    weight: float = typer.Option(1.0, help="upsampling factor of this set in mix.yaml"),
    executor: str | None = typer.Option(None, help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, help=RAY_ADDRESS_HELP),
) -> None:
    """Curate pairs from videos; resumable per video, one row per video in OUT/NAME-work/videos.parquet.

    Example: `pathgen video lectures/ --out pairs --classifier head:frames.safetensors`
    """
    from pydantic import ValidationError

    from pathgen.config import RunConfig, VideoConfig
    from pathgen.executors.factory import make_executor
    from pathgen.video.stage import run_video

    try:
        base = RunConfig.from_yaml(config) if config else RunConfig()
        cfg = with_options(
            base.video if config else VideoConfig(),
            classifier=classifier,
            histology_threshold=histology_threshold,
            speech=speech,
            language=language,
            llm=llm,
            base_url=base_url or None,
            api_key_env=api_key_env,
            vocabulary=vocabulary,
            sample_fps=sample_fps,
            min_stable_s=min_stable_s,
            lead_s=lead_s,
            lag_s=lag_s,
            workers=workers,
        )
        exe = make_executor(executor_config(base, executor, ray_address))
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    try:
        with exe:
            report = run_video(videos, out, cfg, name=name, executor=exe, weight=weight)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    cols = ["video_id", "status", "transcript_source", "stable_clips", "kept_frames", "pairs", "error"]
    console.print(summary_table(f"video -> {out / name}", report.rows, cols))
    s = report.summary
    console.print(
        f"{s['done']} video(s) done ({s['resumed']} resumed), {s['failed']} failed, {s['pairs']} pairs; "
        f"text: {s['text_cleaning'].get('note')}"
    )
    if s.get("warning"):
        console.print(f"[bold yellow]warning[/]: {s['warning']}")
    console.print(f"per-video rows: {out / (name + '-work') / 'videos.parquet'}")
    if not report.written:
        raise fail(
            "no pair was made (see the per-video rows above); nothing was written and mix.yaml is unchanged",
            code=1,
        )
    console.print(f"dataset: {out / name}   mixing manifest: {s.get('manifest')}")


@video_app.command("train-classifier")
def train_classifier(
    frames: Path = typer.Argument(..., help="folder with histology/ and other/ subfolders of frame images"),
    out: Path = typer.Option(..., "--out", "-o", help="the head file to write (.safetensors)"),
    encoder: str | None = typer.Option(
        None,
        help="encoder spec whose embeddings feed the head \\[default: weight-free colour/texture features]",
    ),
    c: float = typer.Option(1.0, help="inverse L2 strength of the logistic regression"),
) -> None:
    """Train the linear histology-frame head used by `pathgen video --classifier head:OUT`."""
    from pathgen.video.head import read_labelled, train_head

    try:
        images, labels, _ = read_labelled(frames)
        head, info = train_head(images, labels, encoder=encoder, c=c)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    head.save(out, extra={k: v for k, v in info.items()})
    rows = [{"item": k, "value": v} for k, v in info.items()]
    console.print(summary_table(f"histology head -> {out}", rows, ["item", "value"]))
    console.print(f"use it: pathgen video VIDEOS --out PAIRS --classifier head:{out}")
