"""`pathgen features` (per-slide HDF5 tile features) and `pathgen mil train|eval` (slide-level MIL).

`pathgen features RUN --encoder SPEC` writes ``RUN/features/<encoder>/h5_files/<slide>.h5``;
`pathgen mil train --features DIR --labels FILE --model abmil --out OUT` trains and tests under the
label set's protocol; `pathgen mil eval --trained OUT --features DIR --labels FILE --out EVAL`
scores the trained runs and draws attention heatmaps. Results sit beside patch results in
`pathgen eval compare`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathgen.cli.app import MODELS, PIPELINE, FilledGroup, app
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

mil_app = typer.Typer(
    cls=FilledGroup,
    help=(
        "Slide-level multiple-instance learning on `pathgen features` files (or CLAM/TRIDENT h5): "
        "mean-pool, ABMIL, ACMIL; `train` then `eval` (metrics + attention heatmaps)."
    ),
    no_args_is_help=True,
)
app.add_typer(mil_app, name="mil", rich_help_panel=MODELS)

FORMAT_HELP = (
    "labels: csv (slide_id,label[,split|fold][,patient]) | camelyon16 (dataset folder or reference.csv) | "
    "camelyon17 (stage_labels.csv) | bracs7 | bracs3 (the BRACS_WSI folder tree)"
)


@app.command("features", rich_help_panel=PIPELINE)
def features(
    run: Path = typer.Argument(..., help="run directory (after `pathgen tile`)"),
    encoder: str = typer.Option(
        ...,
        "--encoder",
        "-e",
        help="tiny | open_clip:NAME\\[@CKPT] | hf:ID_OR_DIR | a `pathgen train` folder",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder for h5_files/ (default RUN/features/<encoder>)"
    ),
    batch_size: int | None = typer.Option(
        None, help=f"images per forward pass {config_default('embed', 'batch_size')}"
    ),
    workers: int | None = typer.Option(
        None, help=f"DataLoader processes per device {config_default('embed', 'workers')}"
    ),
    device: str | None = typer.Option(
        None, help=f"cuda | cpu | cuda:1 ... {config_default('embed', 'device', none='cuda when available')}"
    ),
    devices: str | None = typer.Option(
        None, "--devices", help="one encoder per device, e.g. cuda:0,cuda:1 or all"
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="fp16 | bf16 | fp32 (default fp16 on CUDA, fp32 on CPU)"
    ),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Tile features for slide-level MIL: one HDF5 per slide (CLAM/TRIDENT layout).

    `features` N x D float32 and `coords` N x 2 level-0 int64; resumable per slide; reuses the
    `embed` arrays of the same encoder."""
    from pydantic import ValidationError

    from pathgen.config import RunConfig
    from pathgen.executors import make_executor
    from pathgen.mil.extract import features_stage
    from pathgen.rundir import RunDir

    try:
        base = RunConfig()
        cfg = with_options(
            base.embed,
            encoder=encoder,
            batch_size=batch_size,
            workers=workers,
            device=device,
            devices=devices,
            precision=precision,
        )
        exec_cfg = executor_config(base, executor, ray_address)
    except (ValidationError, ValueError) as exc:
        raise fail(f"bad configuration: {exc}") from exc
    try:
        with make_executor(exec_cfg) as runner:
            summary = features_stage(RunDir(run), cfg, out=out, executor=runner)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    rows = [{"slide": sid, "problem": text} for sid, text in summary["errors"].items()]
    if rows:
        console.print(summary_table("slides with problems", rows, ["slide", "problem"]))
    if summary.get("up_to_date"):
        console.print(f"features: up to date ({summary['skipped']} slides in {summary['out']})")
        return
    keys = ["done", "reused", "skipped", "failed", "n_tiles", "device"]
    console.print(summary_table(f"features -> {summary['out']}/h5_files", [summary], keys))
    if summary["failed"]:
        raise typer.Exit(1)


def _labels(labels: Path, fmt: str, classes: str | None, features: Path):  # type: ignore[no-untyped-def]
    from pathgen.mil.bags import plan_bags
    from pathgen.mil.h5 import feature_files
    from pathgen.mil.labels import load_labels

    class_list = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    label_set = load_labels(labels, fmt, class_list, slide_ids=feature_files(features))
    return label_set, plan_bags(features, label_set)


def _print_problems(problems: list[dict[str, str]]) -> None:
    if problems:
        console.print(
            summary_table(f"{len(problems)} slide(s) left out", problems[:50], ["slide_id", "problem"])
        )


def _print_result(result: dict, out: Path) -> None:
    for task, e in result["tasks"].items():
        row = {
            "task": task,
            "runs": e["n_runs"],
            **{m: e.get(m) for m in ("macro_auc", "balanced_accuracy", "weighted_f1", "accuracy")},
        }
        row |= {f"{m}_std": e.get(f"{m}_std") for m in ("macro_auc",)}
        console.print(
            summary_table(
                f"{result['benchmark']} ({result['n_slides']} slides; {e['protocol']})", [row], list(row)
            )
        )
    typer.echo(f"results: {out / 'results.json'}")


@mil_app.command("train")
def mil_train(
    features: Path = typer.Option(
        ..., "--features", "-f", help="folder of feature files (h5_files/ or *.h5)"
    ),
    labels: Path = typer.Option(..., "--labels", "-l", help="labels file or folder (see --format)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for results, checkpoints, model.json"),
    fmt: str = typer.Option("csv", "--format", help=FORMAT_HELP),
    classes: str | None = typer.Option(
        None, "--classes", help="csv: the class list in order (others are reported)"
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help=f"meanpool | abmil | acmil {config_default('mil', 'model')}"
    ),
    epochs: int | None = typer.Option(None, help=f"most epochs per run {config_default('mil', 'epochs')}"),
    patience: int | None = typer.Option(
        None, help=f"early stopping patience {config_default('mil', 'patience')}"
    ),
    lr: float | None = typer.Option(None, help=f"AdamW learning rate {config_default('mil', 'lr')}"),
    seeds: str | None = typer.Option(None, help=f"comma-separated seeds {config_default('mil', 'seeds')}"),
    folds: int | None = typer.Option(
        None, help=f"k of the k-fold without a split {config_default('mil', 'folds')}"
    ),
    standardize: bool | None = typer.Option(
        None,
        "--standardize/--no-standardize",
        help=f"z-score features with the training slides' statistics {config_default('mil', 'standardize')}",
    ),
    device: str | None = typer.Option(None, help="cuda | cpu (default: cuda when available)"),
) -> None:
    """Train a slide model under the labels' protocol (official split, given folds, or k-fold by
    patient), several seeds; early stopping on validation; macro AUC, balanced accuracy, weighted F1."""
    from pydantic import ValidationError

    from pathgen.cli.common import console as con
    from pathgen.config import MilConfig
    from pathgen.mil.train import train_mil

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
        cfg = with_options(
            MilConfig(),
            model=model,
            epochs=epochs,
            patience=patience,
            lr=lr,
            seeds=seed_list,
            folds=folds,
            standardize=standardize,
            device=device,
        )
    except (ValidationError, ValueError) as exc:
        raise fail(f"bad configuration: {exc}") from exc
    try:
        label_set, plan = _labels(labels, fmt, classes, features)
        _print_problems(plan.problems)
        with con.status("training") as status:
            result = train_mil(plan, cfg, out, label_set.name, tick=lambda text: status.update(text))
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    _print_result(result, out)


@mil_app.command("eval")
def mil_eval(
    trained: Path = typer.Option(..., "--trained", "-t", help="the --out folder of `pathgen mil train`"),
    features: Path = typer.Option(..., "--features", "-f", help="folder of feature files"),
    labels: Path = typer.Option(..., "--labels", "-l", help="labels file or folder (see --format)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for results and heatmaps/"),
    fmt: str = typer.Option("csv", "--format", help=FORMAT_HELP),
    classes: str | None = typer.Option(None, "--classes", help="csv: the class list in order"),
    split: str | None = typer.Option(
        "test", "--split", help="only slides of this split when the labels have one ('' = all)"
    ),
    heatmaps: int = typer.Option(8, "--heatmaps", min=0, help="attention heatmaps for this many slides"),
    top_k: int = typer.Option(8, "--top-k", min=1, help="tiles in each heatmap's top-attention strip"),
    device: str | None = typer.Option(None, help="cuda | cpu (default: cuda when available)"),
) -> None:
    """Score every trained run on these slides (mean ± std) and write attention heatmaps."""
    from pathgen.mil.train import eval_mil

    try:
        label_set, plan = _labels(labels, fmt, classes, features)
        if split and any(b.split for b in plan.bags):
            plan.bags = [b for b in plan.bags if b.split == split]
        elif not any(b.split for b in plan.bags):
            console.print(
                "[yellow]note:[/] the labels have no split column: every labelled slide is scored, "
                "including those the runs trained on (k-fold results are in the train folder)"
            )
        if not plan.bags:
            raise ValueError("no usable slides to evaluate")
        _print_problems(plan.problems)
        result = eval_mil(plan, trained, out, label_set.name, device=device, heatmaps=heatmaps, top_k=top_k)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    _print_result(result, out)
    if result.get("heatmaps"):
        typer.echo(f"heatmaps: {out / 'heatmaps'} ({len(result['heatmaps'])})")
