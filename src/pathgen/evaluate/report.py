"""Results on disk: ``results.json`` (everything), ``results.md`` (the table people paste), confusion
matrix PNGs, and side-by-side comparison of several result folders."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathgen.rundir import atomic_path, atomic_write, write_json

HEADLINE = ("accuracy", "balanced_accuracy", "weighted_f1")
SLIDE_METRICS = ("macro_auc",)  # slide-level (MIL) results also carry it; patch results leave it blank
TASK_ORDER = ("zeroshot", "linear", "fewshot", "retrieval", "mcq")


def confusion_png(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str, path: Path
) -> Path:
    """A labelled confusion matrix (rows: truth, columns: prediction), rendered with matplotlib Agg."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * n + 2), max(3.5, 0.6 * n + 1.5)), dpi=100)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), [c[:24] for c in class_names], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [c[:24] for c in class_names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    vmax = m.max() if m.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if vmax and m[i, j] > vmax / 2 else "black",
            )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def headline_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a result into one row per (task, variant) with its main numbers.

    Tasks come in a fixed order and few-shot k in numeric order: results.json is written with sorted
    keys, so its own order would put ``k=16`` before ``k=2``. A skipped k gets a row with the reason.
    """
    rows = []
    tasks = result.get("tasks", {})
    for task in sorted(tasks, key=_task_order):
        entry = tasks[task]
        if task == "fewshot":
            rows.extend(_fewshot_rows(entry))
        elif task == "retrieval":
            rows.append({"task": task, **retrieval_measures(entry)})
        elif task == "mcq":  # item-weighted overall, then one row per subset (organ / source)
            rows.append(
                {"task": task, "accuracy": entry["accuracy"], "n": entry["n"], "chance": entry["chance"]}
            )
            for subset, sub in entry.get("subsets", {}).items():
                rows.append({"task": f"mcq {subset}", "accuracy": sub["accuracy"], "n": sub["n"]})
        elif all(m in entry for m in HEADLINE):
            kappa = (
                {"quadratic_kappa": entry["quadratic_kappa"]}
                if entry.get("quadratic_kappa") is not None
                else {}
            )
            slide = {m: entry[m] for m in SLIDE_METRICS if entry.get(m) is not None}
            rows.append({"task": task, **{m: entry[m] for m in HEADLINE}, **kappa, **slide})
    return rows


def _task_order(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def _fewshot_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per k, run or skipped, in numeric order of k."""
    shots, skipped = entry.get("shots", {}), entry.get("skipped", {})
    rows = []
    for k in sorted({*shots, *skipped}, key=int):
        if k in shots:
            shot = shots[k]
            row = {m: shot[m]["mean"] for m in (*HEADLINE, "quadratic_kappa") if m in shot}
            row["std"] = shot["accuracy"]["std"]
        else:
            row = {"skipped": skipped[k]}
        rows.append({"task": f"fewshot k={k}", **row})
    return rows


def retrieval_measures(entry: dict[str, Any]) -> dict[str, float]:
    """Recall@k (and majority@k) of a retrieval entry, flat: ``i2t R@1``, ``t2i R@5``, ``R@10``..."""
    flat = {f"i2t {k}": v for k, v in entry.get("image_to_text", {}).items()}
    flat |= {f"t2i {k}": v for k, v in entry.get("text_to_image", {}).items()}
    flat |= {k: v for k, v in entry.items() if k.startswith(("R@", "majority@"))}
    return flat


def markdown_table(rows: list[dict[str, Any]], first: str = "task") -> str:
    cols = [first, *sorted({k for r in rows for k in r if k != first}, key=_col_order)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _col_order(col: str) -> tuple[int, str, int]:
    """Headline metrics and std first, then by name with numbers in numeric order (R@5 before R@10)."""
    order = {m: i for i, m in enumerate((*HEADLINE, "std"))}
    if col == "skipped":  # the reason is long text: last column
        return (len(order) + 1, col, -1)
    m = re.match(r"^(.*?)(\d+)$", col)
    return (order.get(col, len(order)), m.group(1) if m else col, int(m.group(2)) if m else -1)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_results(out: Path, result: dict[str, Any]) -> dict[str, Path]:
    """``results.json`` + ``results.md`` under ``out`` (atomic writes)."""
    out.mkdir(parents=True, exist_ok=True)
    md = (
        f"# {result['benchmark']} — {result['model']}\n\n"
        f"{result.get('n_examples', '')} examples; data: `{result.get('data', '')}`\n\n"
        + markdown_table(headline_rows(result))
    )
    return {
        "json": write_json(out / "results.json", result),
        "markdown": atomic_write(out / "results.md", md),
    }


def load_result(path: Path) -> dict[str, Any]:
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no results.json in {path}; run `pathgen eval ... --out {path}` first")
    return json.loads(file.read_text(encoding="utf-8"))


def compare(paths: Sequence[Path], metric: str = "accuracy") -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables, one column per model: ``metric`` per (benchmark, task) for classification,
    and, in a table of its own, recall@k per (benchmark, measure) for retrieval.

    Retrieval has no accuracy; putting R@1 under an "accuracy" heading would invite comparing
    numbers that mean different things.
    """
    if metric not in HEADLINE + SLIDE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(HEADLINE + SLIDE_METRICS)}")
    results = [load_result(p) for p in paths]
    models = _model_labels(results, paths)
    classification: dict[tuple[str, str], dict[str, Any]] = {}
    retrieval: dict[tuple[str, str], dict[str, Any]] = {}
    for res, label in zip(results, models, strict=True):
        bench = res.get("benchmark", "?")
        for row in headline_rows(res):
            if row["task"] == "retrieval":
                for measure, value in row.items():
                    if measure != "task":
                        retrieval.setdefault((bench, measure), {"benchmark": bench, "measure": measure})
                        retrieval[(bench, measure)][label] = value
            else:
                value = row.get(metric, "skipped" if "skipped" in row else None)
                classification.setdefault((bench, row["task"]), {"benchmark": bench, "task": row["task"]})
                classification[(bench, row["task"])][label] = value
    models = list(dict.fromkeys(models))  # a model with several result folders is one column
    class_rows = [classification[k] for k in sorted(classification, key=_row_order)]
    retr_rows = [retrieval[k] for k in sorted(retrieval, key=lambda k: (k[0], _col_order(k[1])))]
    parts = []
    if class_rows:
        parts.append(_table(f"{metric} by model", ["benchmark", "task", *models], class_rows))
    if retr_rows:
        parts.append(_table("retrieval recall@k by model", ["benchmark", "measure", *models], retr_rows))
    return "\n".join(parts), class_rows + retr_rows


def _model_labels(results: list[dict[str, Any]], paths: Sequence[Path]) -> list[str]:
    """Column labels: the model spec, with the folder added when two folders share a model on the
    same benchmark. One model on different benchmarks (its patch results and its slide-level MIL
    results) shares one column."""
    models: list[str] = []
    benches: dict[str, set[str]] = {}
    for res, p in zip(results, paths, strict=True):
        label = res.get("model", str(p))
        bench = res.get("benchmark", "?")
        if bench in benches.get(label, set()):
            label = f"{label} ({p})"
        benches.setdefault(label, set()).add(bench)
        models.append(label)
    return models


def _row_order(key: tuple[str, str]) -> tuple[str, tuple[int, str], int]:
    """Benchmark, then task in TASK_ORDER, then few-shot k numerically (k=2 before k=16)."""
    bench, task = key
    base, _, k = task.partition(" k=")
    return (bench, _task_order(base), int(k) if k.isdigit() else -1)


def _table(heading: str, cols: list[str], rows: list[dict[str, Any]]) -> str:
    lines = [f"{heading}\n", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
