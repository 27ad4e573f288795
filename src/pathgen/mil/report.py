"""MIL results on disk, in the shape `pathgen eval` writes, so `pathgen eval compare` reads both.

``results.json`` has ``benchmark`` (the label set), ``model`` (the encoder that made the
features) and ``tasks`` with one entry ``mil-<model>`` holding the mean of accuracy, balanced
accuracy, weighted F1 and macro AUC over runs (and their std, and every run). ``results.md`` is the
table people paste; ``predictions.csv`` one row per (run, slide).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pathgen.mil.metrics import HEADLINE
from pathgen.rundir import atomic_write, write_json


def _pm(entry: dict[str, Any], m: str) -> str:
    v, s = entry.get(m), entry.get(f"{m}_std")
    return "" if v is None else f"{v:.4f} ± {s:.4f}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# {result['benchmark']} (slide level) — {result['model']}\n",
        f"{result['n_slides']} slides; classes: {', '.join(result['classes'])}\n",
    ]
    lines += ["| task | protocol | runs | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (3 + len(HEADLINE))]
    for task, e in result["tasks"].items():
        lines.append(
            f"| {task} | {e['protocol']} | {e['n_runs']} | " + " | ".join(_pm(e, m) for m in HEADLINE) + " |"
        )
    for task, e in result["tasks"].items():
        lines += [
            "",
            f"## {task}: runs",
            "",
            "| run | test slides | best epoch | " + " | ".join(HEADLINE) + " |",
            "|" + "---|" * (3 + len(HEADLINE)),
        ]
        for r in e["runs"]:
            vals = ["" if r.get(m) is None else f"{r[m]:.4f}" for m in HEADLINE]
            lines.append(
                f"| {r['run']} | {r['n_test']} | {r.get('best_epoch', '')} | " + " | ".join(vals) + " |"
            )
    if result.get("problems"):
        lines += ["", "## slides left out", "", "| slide | problem |", "|---|---|"]
        lines += [f"| {p['slide_id']} | {p['problem']} |" for p in result["problems"]]
    return "\n".join(lines) + "\n"


def write_mil_results(
    out: Path, result: dict[str, Any], predictions: list[dict[str, Any]]
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    if predictions:
        writer = csv.DictWriter(buf, fieldnames=list(predictions[0]))
        writer.writeheader()
        writer.writerows(predictions)
    return {
        "json": write_json(out / "results.json", result),
        "markdown": atomic_write(out / "results.md", markdown(result)),
        "predictions": atomic_write(out / "predictions.csv", buf.getvalue()),
    }
