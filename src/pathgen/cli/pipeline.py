"""`pathgen run CONFIG.yaml` (the whole chain) and `pathgen demo` (the chain on the packaged sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pathgen.cli.app import PIPELINE, app
from pathgen.cli.common import EXECUTOR_HELP, RAY_ADDRESS_HELP, console, executor_config, fail, interrupted

DEMO_MODEL = "tiny"  # the demo's captioner unless --model names a served one (offline, random)
TINY_WARNING = (
    "[bold yellow]The demo uses TINY RANDOM models[/] (embed.encoder=tiny, caption.model=tiny): it proves "
    "the whole chain runs offline, but its selections and captions are [bold]NOT meaningful[/]."
)
REAL_VLM_HINT = """To caption with a real vision-language model, serve one with an OpenAI-compatible API,
e.g. with vLLM:
  vllm serve llava-hf/llava-v1.6-mistral-7b-hf --port 8000 --max-model-len 8192
then point pathgen at it:
  pathgen demo --base-url http://localhost:8000/v1 --model llava-hf/llava-v1.6-mistral-7b-hf
  pathgen run examples/vllm.yaml        (slides, encoder and all agents in one config)"""


def _stage_line(stage: str, summary: dict[str, Any], seconds: float) -> None:
    if summary.get("up_to_date"):
        state = "[green]up to date[/]"
    else:
        counts = [f"{k} {summary.get(k, 0)}" for k in ("done", "skipped", "failed")]
        state = ", ".join(counts)
    console.print(f"[bold]{stage:>8}[/]  {state}  ({seconds:.1f} s)")


def _run(cfg: Any, out: Path | None, until: str, limit: int | None) -> dict[str, dict[str, Any]]:
    from pathgen.engine.runner import Interrupted
    from pathgen.pipeline import PipelineError, run_pipeline

    try:
        return run_pipeline(cfg, out, until=until, caption_limit=limit, on_stage=_stage_line)
    except Interrupted as exc:
        raise interrupted(exc) from exc
    except PipelineError as exc:
        raise fail(f"stage {exc}", code=1) from exc
    except ValueError as exc:
        raise fail(str(exc)) from exc


def _finish(summaries: dict[str, dict[str, Any]], root: Path) -> None:
    from pathgen.cli.export import print_export_summary

    if "export" in summaries:
        print_export_summary(summaries["export"], root / "export")


@app.command("run", rich_help_panel=PIPELINE)
def run(
    config: Path = typer.Argument(
        ..., help="YAML run config (slides, out, tile/embed/select/caption/export)"
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="run directory \\[default: `out:` of the config]"
    ),
    until: str = typer.Option("export", help="last stage to run: tile | embed | select | caption | export"),
    limit: int | None = typer.Option(None, help="caption at most this many tiles (a cheap first look)"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Run tile -> embed -> select -> caption -> export; run it again to resume (each stage is fingerprinted).

    Example: `pathgen run examples/vllm.yaml --out runs/my-slides`
    """
    from pydantic import ValidationError

    from pathgen.config import RunConfig

    try:
        cfg = RunConfig.from_yaml(config)
        cfg = cfg.model_copy(update={"executor": executor_config(cfg, executor, ray_address)})
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(f"bad configuration: {exc}") from exc
    summaries = _run(cfg, out, until, limit)
    _finish(summaries, Path(out or cfg.out))


def find_sample_slides(explicit: Path | None = None) -> Path:
    """The slide folder given with ``--slides`` (the demo's default needs none: see :func:`demo_slides`)."""
    if explicit is not None and explicit.is_dir():
        return explicit
    raise FileNotFoundError(
        f"slide folder not found: {explicit}; leave out --slides to run on the sample shipped with pathgen"
    )


def demo_slides(explicit: Path | None, out: Path) -> tuple[str, str]:
    """The demo's slide input and how to name it: ``--slides DIR`` (a manifest written for it), or
    the sample shipped inside the package (``pathgen:sample``), which needs no data folder at all."""
    if explicit is None:
        from pathgen.sample_data import SAMPLE_SPEC, sample_manifest

        return SAMPLE_SPEC, f"{SAMPLE_SPEC} (shipped with pathgen: {sample_manifest().parent})"
    slide_dir = find_sample_slides(explicit)
    out.mkdir(parents=True, exist_ok=True)
    return str(write_demo_manifest(slide_dir, out)), str(slide_dir)


# What the demo knows of the shared data folder's slides (`--slides ../shared/data/slides`), so that
# selection by the project's attribute prompts and by report findings runs too. The reports are
# illustrative, not the slides' real reports.
SAMPLE_SLIDE_FACTS = {
    "tcga-cr-7395-01a-01-ts1": (
        "TCGA-HNSC",
        "Invasive keratinizing squamous cell carcinoma. Keratin pearls are present. "
        "The tumour is surrounded by desmoplastic stroma with lymphocytic infiltrate.",
    ),
    "CMU-1-Small-Region": ("", "Skin with epidermis and superficial dermis."),
    "TCGA-XK-AAJU-small": ("TCGA-PRAD", ""),
}


def write_demo_manifest(slide_dir: Path, out: Path) -> Path:
    """``OUT/demo-manifest.csv``: every slide of the sample folder with its project and report."""
    import csv
    import io

    from pathgen.rundir import atomic_write
    from pathgen.slides.manifest import SLIDE_EXTENSIONS

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "slide_id", "project", "report"])
    for path in sorted(p for p in slide_dir.iterdir() if p.suffix.lower() in SLIDE_EXTENSIONS):
        project, report = SAMPLE_SLIDE_FACTS.get(path.stem, ("", ""))
        writer.writerow([str(path.resolve()), path.stem, project, report])
    target = Path(out) / "demo-manifest.csv"
    if target.exists() and target.read_text(encoding="utf-8") == buf.getvalue():
        return target  # untouched, so the tile stage stays up to date
    return atomic_write(target, buf.getvalue())


def demo_config(
    slides: str | Path, out: Path, per_slide: int, base_url: str | None, model: str | None
) -> Any:
    """The demo's RunConfig: published tiling, tiny encoder, a few patches per slide, tiny or real VLM.

    ``slides`` is ``pathgen:sample``, a slide folder or a manifest (``--slides`` gets one written)."""
    from pathgen.config import RunConfig

    caption: dict[str, Any] = {"model": model or DEMO_MODEL}
    if base_url:
        caption["base_url"] = base_url
    return RunConfig.model_validate(
        {
            "slides": [str(slides)],
            "out": str(out),
            "embed": {"encoder": "tiny", "batch_size": 16, "workers": 0},
            # A random encoder makes every patch look alike (cosine ~1), so near-duplicate removal at
            # the published 0.88 would keep one patch a slide; the demo drops exact copies only.
            "select": {
                "per_slide_cap": per_slide,
                "top_k_attribute": per_slide,
                "top_k_finding": per_slide,
                "dedup_threshold": 1.0,
            },
            "caption": caption,
            "export": {"samples_per_shard": 4},
        }
    )


@app.command("demo", rich_help_panel=PIPELINE)
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="run directory"),
    slides: Path | None = typer.Option(
        None, help="slide folder \\[default: the sample slide shipped with pathgen, `pathgen:sample`]"
    ),
    per_slide: int = typer.Option(4, help="patches captioned per slide (the method keeps up to 256)"),
    base_url: str | None = typer.Option(
        None, help="OpenAI-compatible VLM server, e.g. http://localhost:8000/v1"
    ),
    model: str | None = typer.Option(
        None, help=f"model name served at --base-url \\[default: {DEMO_MODEL}, offline]"
    ),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """The whole chain on the sample slide shipped with pathgen, offline, in under a minute on a laptop CPU.

    Example: `pathgen demo --out runs/demo`; `--slides DIR` runs it on a folder of your slides."""
    if base_url and not model:
        raise fail("--base-url needs --model (the name the server serves)")
    try:
        slide_input, shown = demo_slides(slides, out)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    cfg = demo_config(slide_input, out, per_slide, base_url, model)
    try:
        cfg = cfg.model_copy(update={"executor": executor_config(cfg, executor, ray_address)})
    except ValueError as exc:
        raise fail(f"bad configuration: {exc}") from exc
    tiny = not base_url
    if tiny:
        console.print(TINY_WARNING)
    console.print(
        f"demo: slides {shown} -> {out}; at most {per_slide} patch(es) per slide are captioned "
        "(the published method keeps up to 256: use `pathgen run` with your own config for that)"
    )
    summaries = _run(cfg, out, "export", None)
    _finish(summaries, out)
    if tiny:
        console.print(TINY_WARNING)
        console.print(REAL_VLM_HINT)
