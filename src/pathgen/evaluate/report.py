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
    """Flatten a result into one row per (task, variant) with its main numbers."""
    rows = []
    for task, entry in result.get("tasks", {}).items():
        if task == "fewshot":
            for k, shot in entry.get("shots", {}).items():
                rows.append(
                    {
                        "task": f"fewshot k={k}",
                        **{m: shot[m]["mean"] for m in HEADLINE},
                        "std": shot["accuracy"]["std"],
                    }
                )
        elif task == "retrieval":
            flat = {f"i2t {k}": v for k, v in entry.get("image_to_text", {}).items()}
            flat |= {f"t2i {k}": v for k, v in entry.get("text_to_image", {}).items()}
            flat |= {k: v for k, v in entry.items() if k.startswith(("R@", "majority@"))}
            rows.append({"task": task, **flat})
        elif all(m in entry for m in HEADLINE):
            rows.append({"task": task, **{m: entry[m] for m in HEADLINE}})
    return rows


def markdown_table(rows: list[dict[str, Any]], first: str = "task") -> str:
    cols = [first, *sorted({k for r in rows for k in r if k != first}, key=_col_order)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _col_order(col: str) -> tuple[int, str, int]:
    """Headline metrics first, then by name with numbers in numeric order (R@5 before R@10)."""
    order = {m: i for i, m in enumerate(HEADLINE)}
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
    """One row per (benchmark, task), one column per model: ``metric`` side by side (markdown)."""
    results = [load_result(p) for p in paths]
    models = []
    for res, p in zip(results, paths, strict=True):
        label = res.get("model", str(p))
        models.append(label if label not in models else f"{label} ({p})")
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for res, label in zip(results, models, strict=True):
        for row in headline_rows(res):
            key = (res.get("benchmark", "?"), row["task"])
            value = row.get(metric, row.get("i2t R@1", row.get("R@1")))
            table.setdefault(key, {"benchmark": key[0], "task": key[1]})[label] = value
    rows = list(table.values())
    cols = ["benchmark", "task", *models]
    lines = [f"{metric} by model\n", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n", rows
